"""The one exception for user mistakes (the CLI prints its message on one line and exits 2), and the warning."""


class SocietalError(Exception):
    """A bad input (unknown name, bad value, existing output folder, unreadable checkpoint)."""


class SocietalWarning(UserWarning):
    """A setting that runs but probably not as the user hopes (e.g. Q* outside the bids' range)."""
