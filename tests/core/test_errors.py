"""The error tree's single sources: the code list, the "internal" rule and the page-size check."""

from __future__ import annotations

import inspect

import pytest

from chitram_core import errors
from chitram_core.errors import (
    ERRORS_BY_CODE,
    ChitramError,
    ConfigurationError,
    InternalError,
    InvalidImage,
    NotFound,
    ProviderUnavailable,
    RateLimitExceeded,
    ServiceUnavailable,
    TaggerUnavailable,
    ValidationError,
    check_limit,
    is_internal,
)


def _error_classes() -> list[type[ChitramError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, ChitramError)
    ]


def test_every_code_a_class_can_carry_is_listed() -> None:
    assert {cls.code for cls in _error_classes()} == set(ERRORS_BY_CODE)


def test_each_listed_class_owns_its_code() -> None:
    for code, cls in ERRORS_BY_CODE.items():
        assert cls.code == code


@pytest.mark.parametrize(
    "error",
    [InternalError(), ConfigurationError(), ChitramError()],
)
def test_server_faults_are_internal(error: ChitramError) -> None:
    assert is_internal(error)


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailable(),
        ProviderUnavailable(),
        TaggerUnavailable(),
        ValidationError(),
        NotFound(),
        InvalidImage(),
        RateLimitExceeded(limit=1, retry_after=1),
    ],
)
def test_client_errors_and_retry_later_are_not_internal(error: ChitramError) -> None:
    assert not is_internal(error)


@pytest.mark.parametrize(
    ("status", "internal"),
    [(500, True), (502, True), (504, True), (503, False), (499, False), (404, False)],
)
def test_the_rule_on_bare_statuses(status: int, internal: bool) -> None:
    assert is_internal(status) is internal


@pytest.mark.parametrize("value", [1, 50, 100])
def test_check_limit_passes_page_sizes_through(value: int) -> None:
    assert check_limit(value) == value


@pytest.mark.parametrize("value", [0, -1, 101])
def test_check_limit_refuses_what_is_out_of_range(value: int) -> None:
    with pytest.raises(ValidationError) as caught:
        check_limit(value)
    assert caught.value.message == "limit must be between 1 and 100"
    assert caught.value.details == {"field": "limit"}


def test_check_limit_names_its_field_and_bound() -> None:
    with pytest.raises(ValidationError) as caught:
        check_limit(11, high=10, field="size")
    assert caught.value.message == "size must be between 1 and 10"
    assert caught.value.details == {"field": "size"}
