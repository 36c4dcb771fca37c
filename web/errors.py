"""Error responses: JSON under /api/ (web.schemas.ErrorSchema), a page elsewhere;
never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

from core.submission import InvalidSubmission
from db.files import FileStoreUnavailable
from db.session import DATABASE_UNAVAILABLE
from web.schemas import ErrorSchema

log = logging.getLogger(__name__)

UNEXPECTED_MESSAGE = "Something went wrong on the server. The error was logged; please try again later."
UNAVAILABLE_MESSAGE = "The service is briefly unavailable (its database cannot be reached). Please try again in a few seconds."
FILES_UNAVAILABLE_MESSAGE = ("The service is briefly unavailable (its file store cannot be reached). "
                             "Please try again in a few seconds.")
RETRY_AFTER_S = 5  # the Retry-After of a 503: about how long a database restart takes


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(RequestEntityTooLarge, too_large)
    app.register_error_handler(InvalidSubmission, invalid_submission)
    app.register_error_handler(HTTPException, http_error)
    for error in DATABASE_UNAVAILABLE:
        app.register_error_handler(error, database_unavailable)
    app.register_error_handler(FileStoreUnavailable, file_store_unavailable)
    app.register_error_handler(Exception, unexpected)


def too_large(_exc: RequestEntityTooLarge):
    message = _too_large_message()
    if _wants_json():
        return _json_error(message, 413, fields={"image": message})
    from web.pages import render_form

    return render_form({"image": message}, 413, form={})  # the body was not read


def invalid_submission(exc: InvalidSubmission):
    """A refused study, from the API or the form: nothing was stored or queued."""
    if _wants_json():
        return _json_error(str(exc), 400, fields=exc.errors)
    from web.pages import render_form

    return render_form(exc.errors, 400)


def http_error(exc: HTTPException):
    message = exc.description or exc.name
    if _wants_json():
        return _json_error(message, exc.code)
    return render_template("error.html", code=exc.code, title=exc.name, message=message), exc.code


def database_unavailable(exc: Exception):
    """The database is down or restarting: 503 with Retry-After, so clients come back
    (a submission whose row was not committed left nothing behind; one that was is
    queued or will be found by the recovery sweep)."""
    log.warning("database unavailable on %s %s: %s", request.method, request.path, str(exc).splitlines()[0][:300])
    return _unavailable(UNAVAILABLE_MESSAGE)


def file_store_unavailable(exc: FileStoreUnavailable):
    """The S3 store cannot be reached: 503 with Retry-After. A submission stores its files
    before its row, so one refused here left no row and queued nothing."""
    log.warning("file store unavailable on %s %s: %s", request.method, request.path, str(exc)[:300])
    return _unavailable(FILES_UNAVAILABLE_MESSAGE)


def _unavailable(message: str):
    headers = {"Retry-After": str(RETRY_AFTER_S)}
    if _wants_json():
        response, status = _json_error(message, 503)
        return response, status, headers
    page = render_template("error.html", code=503, title="Service Unavailable", message=message)
    return page, 503, headers


def unexpected(_exc: Exception):
    """Anything else a view raised (Flask sends HTTPExceptions to http_error)."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    error = InternalServerError()
    if _wants_json():
        return _json_error(UNEXPECTED_MESSAGE, error.code)
    return render_template("error.html", code=error.code, title=error.name, message=UNEXPECTED_MESSAGE), error.code


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _json_error(message: str, status: int, *, fields: dict[str, str] | None = None):
    body = {"error": message}
    if fields is not None:
        body["field_messages"] = fields
    return jsonify(ErrorSchema().dump(body)), status


def _too_large_message() -> str:
    from web.dependencies import deps

    return (
        f"The upload is too large: the limit is {deps().settings.max_upload_mb:g} MB. "
        "Downscale or compress the radiograph and try again."
    )
