"""The OpenAPI document's error codes are the SDK's, derived and not copied."""

from __future__ import annotations

from chitram_core.errors import ERRORS_BY_CODE
from chitram_falcon.openapi import build_spec


def test_the_documented_error_codes_are_every_sdk_code() -> None:
    spec = build_spec()
    error = spec["components"]["schemas"]["Error"]
    enum = error["properties"]["detail"]["properties"]["code"]["enum"]
    assert enum == list(ERRORS_BY_CODE)
    assert "REQUEST_TIMEOUT" in enum
