"""Run as a script by a driver that starts a private Ray instance (``cluster.private_folder``), with the
instance's own temporary folder as its argument and a pipe from the driver on its standard input.

When the pipe closes (the driver closed it after ``ray.shutdown``, or the driver died, ``kill -9`` included),
every other process that names the folder in its command line or has a file or its working directory in it is
stopped (SIGTERM, SIGKILL after 2 s), and the folder is removed: Ray's agents (dashboard, runtime-env) sometimes
outlive their raylet. The driver itself is spared. Processes are found in ``/proc`` (Linux); elsewhere only the
folder is removed. It imports nothing but the standard library, so that it starts in a moment.
"""

import contextlib
import os
import shutil
import signal
import sys
import time

GRACE_S, GIVE_UP_S = 2.0, 15.0


def users(folder: str, spared: set[int]) -> list[int]:
    """The processes, other than ``spared``, that use ``folder``; those this user may not inspect are passed over."""
    found = []
    for pid in (int(name) for name in os.listdir("/proc") if name.isdigit()) if os.path.isdir("/proc") else ():
        with contextlib.suppress(OSError):  # ended meanwhile, or another user's
            if pid not in spared and uses(pid, folder):
                found.append(pid)
    return found


def uses(pid: int, folder: str) -> bool:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        if folder.encode() in f.read():
            return True
    links = [f"/proc/{pid}/cwd", *(f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd"))]
    return any(target == folder or target.startswith(folder + os.sep) for target in map(read_link, links))


def read_link(link: str) -> str:
    try:
        return os.readlink(link)
    except OSError:  # closed meanwhile
        return ""


def main(folder: str) -> None:
    spared = {os.getpid(), os.getppid()}  # the driver, when it closed the pipe after its own shutdown
    sys.stdin.buffer.read()
    first: dict[int, float] = {}  # when each process was first asked to end
    start = time.monotonic()
    while (pids := users(folder, spared)) and time.monotonic() - start < GIVE_UP_S:
        now = time.monotonic()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if now - first.setdefault(pid, now) > GRACE_S else signal.SIGTERM)
        time.sleep(0.1)
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
