"""Errors that the command line reports as one line, without a traceback."""


class UserError(Exception):
    """Bad input from the user (a file, a field, an argument); the message names it.

    Attributes:
        exit_code: the process exit status the command line returns (default 2).
    """

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
