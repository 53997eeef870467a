"""Ray for ``societal.distributed``: a private instance on this machine, or a cluster to join.

Without an address a private Ray instance is started on this machine (no dashboard, no usage reporting,
a capped object store) and shut down at the end. Every one of its servers listens on 127.0.0.1 only
(measured with Ray 2.60: the GCS, the raylet's node-manager and object-manager ports, the runtime-env
agent, the driver's and every worker's gRPC server), and it asks for a token, a new one of its own, held
in the environment of its processes, whatever ``RAY_AUTH_MODE`` says: another user of this machine can
reach its ports but cannot run code on it. Its files are in a temporary folder of its own, which a watchdog
(``societal/watchdog.py``) clears, with every process still using it, once the driver ends, even by ``kill -9``.

With an address the runs join that cluster, and their folders must be on storage every node can write.
They send the token of ``$RAY_AUTH_TOKEN``, ``$RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token`` (unless
``RAY_AUTH_MODE`` says otherwise); a cluster that answers without a token gets a ``SocietalWarning``, as
anyone who can reach its ports can run code on its nodes.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from societal.errors import SocietalError, SocietalWarning, Stopped

SOCKET_TAIL = len("/rayxxxxxxxx/session_2026-12-08_01-04-55_518621_4194304/sockets/plasma_store")
AUTHENTICATION = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


@contextmanager
def ray_cluster(address: str | None = None, cpus: int | None = None) -> Iterator[None]:
    """Join the Ray cluster at ``address``, or start a private one on this machine with ``cpus`` CPUs."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # run folders are absolute; keep the working directory
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # each run writes its own TensorBoard events
    os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default, 15, starves the runs on a busy machine
    with authentication(address), (nullcontext() if address is not None else private_folder()) as folder:
        import ray

        try:
            with stopped_while_starting():
                if address is not None:
                    join(address)
                else:
                    with loopback_only():
                        ray.init(address="local", num_cpus=cpus or os.cpu_count(), include_dashboard=False,
                                 _node_ip_address="127.0.0.1", object_store_memory=256 * 2**20, logging_level="ERROR",
                                 _temp_dir=folder)
            yield
        finally:
            ray.shutdown()


@contextmanager
def private_folder() -> Iterator[str]:
    """A new temporary folder of the private Ray instance's own, watched by ``societal/watchdog.py`` (in a session
    of its own, away from the terminal's signals): once this process leaves the block or dies, however (``kill
    -9`` too), it stops every process still using the folder and removes it."""
    # where Ray would make its own, unless its sockets, <folder>/session_<time>_<pid>/sockets/plasma_store, would
    # not fit a Unix socket's 107 bytes
    bases = [b for b in (os.environ.get("RAY_TMPDIR"), os.environ.get("TMPDIR"), "/tmp") if b]
    base = next((b for b in bases if len(b) + SOCKET_TAIL <= 107), "/tmp")
    try:
        folder = tempfile.mkdtemp(prefix="ray", dir=base)
    except OSError as e:
        raise SocietalError(f"cannot make a temporary folder for Ray in {base}: {e.strerror}") from None
    watchdog = subprocess.Popen([sys.executable, str(Path(__file__).with_name("watchdog.py")), folder],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        yield folder
    finally:
        watchdog.stdin.close()  # what it waits for; its own death closes it too
        watchdog.wait()


@contextmanager
def stopped_while_starting() -> Iterator[None]:
    """SIGINT or SIGTERM while Ray starts or is being joined: ``Stopped`` (one line, exit 130 or 143)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(number: int, frame) -> None:
        raise Stopped(f"stopped by {signal.Signals(number).name} while Ray was starting; no run had started", number)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except SystemExit as e:  # ray.init puts in its own SIGTERM handler, which exits with the signal's number
        if e.code != signal.SIGTERM:
            raise
        stop(signal.SIGTERM, None)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextmanager
def authentication(address: str | None) -> Iterator[None]:
    """Ray's authentication settings for this cluster, the environment's restored afterwards.

    The private instance always asks for a token, a throwaway one in ``$RAY_AUTH_TOKEN``: a fresh home has
    no ``~/.ray/auth_token`` (Ray would write one there) and ``RAY_AUTH_MODE=disabled`` in the user's shell
    would let anyone who reaches its ports run code. A cluster is joined with the user's token, if any.
    """
    saved = {name: os.environ.get(name) for name in AUTHENTICATION}
    if address is None:
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    elif "RAY_AUTH_TOKEN" in os.environ or token_file().is_file():
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # a cluster started by `ray start` asks for its token
    reload_authentication()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        reload_authentication()


def token_file() -> Path:
    """Where Ray reads its token from when ``$RAY_AUTH_TOKEN`` is not set."""
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH", Path.home() / ".ray" / "auth_token"))


def reload_authentication() -> None:
    """Ray reads the mode and the token once per process: make it read them again (a second cluster, or a
    sweep after a private instance, in the same process)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # the mode first, as Ray's own tests do: a token dropped under token mode is fatal
    AuthenticationTokenLoader.instance().reset_cache()


@contextmanager
def loopback_only() -> Iterator[None]:
    """Ray 2.60 replaces a node address of 127.0.0.1 with this machine's network address (``ray.init`` and
    ``ray start`` both), and then its GCS, raylet and workers listen on every interface; only its switch for
    machines without multi-node clusters (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read once as Ray is
    imported) keeps 127.0.0.1, and with it every server binds to loopback. Set only while the private instance
    starts and while a driver joins a cluster at 127.0.0.1 (Ray would dial the network address instead, where a
    loopback-only head does not listen); afterwards Ray asks its node. A driver joining other machines must
    give them its network address."""
    from ray._private import ray_constants

    saved = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved


def join(address: str) -> None:
    """Connect to the cluster at ``address``: one line if it asks for a token this client does not send, a
    ``SocietalWarning`` if it runs code for clients without a token."""
    import ray
    from ray.exceptions import AuthenticationError

    host = address.removeprefix("ray://").rpartition(":")[0].strip("[]")
    gcs = bool(host) and not address.startswith("ray://")  # HOST:PORT is a GCS; ray:// a Ray Client server
    auth = gcs_authentication(address) if gcs else None
    if gcs and auth is None:  # Ray itself would try for minutes
        raise SocietalError(f"no Ray cluster answers at {address} (within 10 s)")
    if auth == "token" and os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        raise SocietalError(f"the Ray cluster at {address} asks for a token, and this client sends none: set "
                            "RAY_AUTH_TOKEN_PATH to a copy of the cluster's token file (or RAY_AUTH_TOKEN), and "
                            "RAY_AUTH_MODE to token or not at all")
    if auth == "none":  # the driver's own server must not ask the cluster's workers for a token they lack
        os.environ["RAY_AUTH_MODE"] = "disabled"
        reload_authentication()
    try:
        with loopback_only() if host in ("localhost", "::1") or host.startswith("127.") else nullcontext():
            ray.init(address=address, logging_level="ERROR")  # kept at 127.0.0.1, where a private head listens
    except (AuthenticationError, ConnectionError, ValueError) as e:  # a wrong token, a bad address, …
        raise SocietalError(f"could not join the Ray cluster at {address}: {str(e).split('. ')[0]}") from None
    if auth == "none":
        warnings.warn(f"the Ray cluster at {address} runs without token authentication: anyone who can reach its "
                      "ports can run code on its nodes (start them with RAY_AUTH_MODE=token, see the README)",
                      SocietalWarning, stacklevel=4)


def gcs_authentication(address: str) -> str | None:
    """``"token"`` if the GCS at ``address`` refuses a request that carries no token, ``"none"`` if it answers,
    ``None`` if nothing answers within 10 s (one plain gRPC call)."""
    import grpc
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(gcs_service_pb2.GetClusterIdRequest(),
                                                                               timeout=10, wait_for_ready=True)
        except grpc.RpcError as e:
            return "token" if e.code() == grpc.StatusCode.UNAUTHENTICATED else None
    return "none"
