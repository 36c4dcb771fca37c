"""The OpenAPI 3 document for /api/v1, served at /api/v1/openapi.json.

flask-smorest generates it from web.api's routes and the schemas in web.schemas,
the same schemas the responses are dumped through.
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from web.errors import http_error
from web.schemas import ErrorSchema

DESCRIPTION = (
    "Queue a hand radiograph for bone-age assessment and fetch the result. "
    "Results are decision support, not a diagnosis."
)


class AssessmentApi(Api):
    """flask-smorest's Api, documenting and answering errors as web.errors does."""

    ERROR_SCHEMA = ErrorSchema
    handle_http_exception = staticmethod(http_error)


def init_api(app: Flask) -> AssessmentApi:
    app.config.update(
        API_TITLE="boneage assessment API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
    )
    return AssessmentApi(app, spec_kwargs={"info": {"description": DESCRIPTION}})
