"""Error responses: JSON under /api/, a page elsewhere; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge

log = logging.getLogger(__name__)


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def _too_large_message() -> str:
    from web.dependencies import deps

    return (
        f"The upload is too large: the limit is {deps().settings.max_upload_mb:g} MB. "
        "Downscale or compress the radiograph and try again."
    )


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        message = _too_large_message()
        if _wants_json():
            return jsonify(error=message, fields={"image": message}), 413
        from web.pages import render_form

        return render_form({"image": message}, 413, form={})  # the body was not read

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        message = exc.description or exc.name
        if _wants_json():
            return jsonify(error=message), exc.code
        return render_template("error.html", code=exc.code, title=exc.name, message=message), exc.code

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        error = InternalServerError()
        message = "Something went wrong on the server. The error was logged; please try again later."
        if _wants_json():
            return jsonify(error=message), error.code
        return render_template("error.html", code=error.code, title=error.name, message=message), error.code
