"""What can stop a run, each with the exit status the CLI gives it after printing its one line, and the warning."""


class SocietalError(Exception):
    """A bad input (unknown name, bad value, existing output folder, unreadable checkpoint): nothing is written."""

    exit_status = 2


class WriteFailed(SocietalError):
    """The run folder cannot be written (a full disk); the last checkpoint written stays as it was."""

    exit_status = 1


class EnvironmentFailed(SocietalError):
    """The environment raised during training; the last checkpoint written stays as it was."""

    exit_status = 1


class RunsLost(SocietalError):
    """Runs of a sweep ended before their budget with no error of their own and no signal (Ray lost their node
    or worker); each keeps its last checkpoint, and ``--resume`` goes on."""

    exit_status = 1


class Diverged(SocietalError):
    """A bid, utility, loss, gradient or parameter became NaN or infinite; the last good checkpoint is kept."""

    exit_status = 3


class Stopped(SocietalError):
    """SIGINT or SIGTERM: the run finished its update, wrote a checkpoint and its plots, and can be resumed."""

    def __init__(self, message: str, signal_number: int) -> None:
        super().__init__(message)
        self.exit_status = 128 + signal_number


class SocietalWarning(UserWarning):
    """A setting that runs but probably not as the user hopes (e.g. Q* outside the bids' range)."""
