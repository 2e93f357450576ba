"""The one exception type for bad user input: the CLI prints its message as one line."""


class UserError(ValueError):
    """Bad input from the user (a file, an option, an id); the message names the problem and the fix."""
