"""Errors shared across the project."""


class UserFacingError(Exception):
    """An error whose message tells the user what to do; shown without a traceback."""
