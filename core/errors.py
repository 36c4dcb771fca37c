"""Errors shared across the project."""


class UserFacingError(Exception):
    """An error whose message tells the user what to do; shown without a traceback."""


class JobFailed(UserFacingError):
    """A job cannot succeed; the message is stored on the job and shown to its user."""
