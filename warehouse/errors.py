"""The one error type the CLI turns into a one-line message (no traceback unless --debug)."""


class UserError(Exception):
    """Bad input or a refused action: the message names the file, row and field at fault."""
