"""The one exception for user mistakes: the CLI prints its message on one line and exits 2."""


class SocietalError(Exception):
    """A bad input (unknown name, bad value, existing output folder, unreadable checkpoint)."""
