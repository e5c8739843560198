"""Schemathesis against the OpenAPI document, sent over real HTTP to the served app: generated
requests, bounded in number, never get a 500, and every response matches the documented status
codes, content type, headers and schema; requests the schema forbids are refused with a 4xx."""

from __future__ import annotations

import httpx
import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed: pip install -e '.[test]'")
from hypothesis import HealthCheck, settings  # noqa: E402

from qa.serve.api import openapi_document  # noqa: E402

# Loaded at collection time from the app itself (schemathesis' from_fixture does not run on pytest 9);
# the first test checks that it is exactly what the server publishes.
schema = schemathesis.openapi.from_dict(openapi_document())

CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.negative_data_rejection,
]


def test_the_schema_under_test_is_the_one_served(api) -> None:
    assert httpx.get(f"{api.url}/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_every_operation_conforms(case, api) -> None:
    case.call_and_validate(base_url=api.url, checks=CHECKS, timeout=60)
