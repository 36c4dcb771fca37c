"""Schemathesis generates requests from the OpenAPI document (valid and invalid ones)
for every operation: no generated request may cause a server error."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings

from helpers import api_token, auth_header
from web import create_app


def test_no_generated_request_causes_a_server_error(embedded_settings):
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", create_app(embedded_settings))
    headers = auth_header(api_token(embedded_settings, "admin"))  # every operation, as an administrator
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    errors, calls = [], []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def call(case):
            response = case.call(headers=headers)
            calls.append(response.status_code)
            if response.status_code >= 500:
                errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:200]}")

        call()
    assert len(calls) >= 5 * len(operations), "schemathesis generated too few requests"
    assert {200, 202, 400, 404} & set(calls), sorted(set(calls))
    assert not errors, "\n".join(errors[:10])
