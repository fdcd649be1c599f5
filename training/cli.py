"""`reasonlite` subcommands of this stage."""


def register(sub) -> None:
    """Add this stage's subcommands to the `reasonlite` parser."""
