"""Checking the API's responses against its own OpenAPI document.

    app = contract_checked(create_app(settings))

makes every response that app's test client gets under /api/ be checked against
/api/v1/openapi.json as it arrives: the operation, the status code and the content
type must be documented, the documented headers sent, and a JSON body must match the
documented schema. The schemas say `additionalProperties: false`, so a field the API
sends that the document lacks fails the test that made the request.
"""

from __future__ import annotations

import re
from functools import cache

from flask import Flask
from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator, oas30_format_checker

DOCUMENT_PATH = "/api/v1/openapi.json"
ERROR_SCHEMA = {"$ref": "#/components/schemas/Error"}


class ContractCheckingClient(FlaskClient):
    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        request = response.request
        if request.path.startswith("/api/") and request.path != DOCUMENT_PATH:
            check_response(api_document(self.application), request.method, request.path, response)
        return response


def contract_checked(app: Flask) -> Flask:
    app.test_client_class = ContractCheckingClient
    return app


def api_document(app: Flask) -> dict:
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    return api.spec.to_dict()


def check_response(document: dict, method: str, path: str, response) -> None:
    """AssertionError unless `response` to METHOD path is what the document says."""
    where = f"{method} {path} -> {response.status_code}"
    operation = find_operation(document, method, path)
    if operation is None:  # an unknown URL under /api/: still a documented error body
        assert response.is_json, f"{where}: an unknown /api/ URL must answer JSON"
        check_body(document, ERROR_SCHEMA, response.get_json(), where)
        return
    responses = operation["responses"]
    documented = responses.get(str(response.status_code))
    if documented is None and response.status_code >= 400:
        documented = responses.get("default")  # any other error, e.g. a 500
    assert documented is not None, f"{where}: status {response.status_code} is not documented"
    documented = resolve(document, documented)
    for header in documented.get("headers", {}):
        assert header in response.headers, f"{where}: the documented header {header} is missing"
    content = documented.get("content", {})
    assert response.mimetype in content, f"{where}: {response.mimetype} is not documented ({sorted(content)})"
    if response.is_json:
        check_body(document, content[response.mimetype]["schema"], response.get_json(), where)


def check_body(document: dict, schema: dict, body, where: str) -> None:
    errors = sorted(validator(document, schema).iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{where}: the body does not match the document:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '(body)'}: {e.message}" for e in errors
    )


def find_operation(document: dict, method: str, path: str) -> dict | None:
    for template, operations in document["paths"].items():
        if _template_pattern(template).fullmatch(path):
            return operations.get(method.lower())
    return None


def resolve(document: dict, item: dict) -> dict:
    while "$ref" in item:
        node = document
        for part in item["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        item = node
    return item


def validator(document: dict, schema: dict) -> OAS30Validator:
    # The components travel with the schema so that its "#/components/..." $refs resolve.
    return OAS30Validator({**schema, "components": document["components"]}, format_checker=oas30_format_checker)


@cache
def _template_pattern(template: str) -> re.Pattern:
    return re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)))
