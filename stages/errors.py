"""The one error type the CLI turns into a one-line message and exit code 1."""


class AuxReidError(Exception):
    """A problem with the user's input, files or settings, explained in one line.

    The message says what is wrong, which file or option, and what to do. Real bugs use
    other exception types so that they keep their traceback.
    """
