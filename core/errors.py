"""Errors shared across the project."""


class UserFacingError(Exception):
    """An error whose message tells the user what to do; shown without a traceback."""


class JobFailed(UserFacingError):
    """A job cannot succeed; the message is stored on the job and shown to its user."""


class NotFound(UserFacingError):
    """The thing asked for does not exist (HTTP 404)."""


class Conflict(UserFacingError):
    """The request is valid but not in the current state (HTTP 409): e.g. cancelling a
    finished job, activating a model that compares worse than the serving one."""
