"""Delete tokens (and other secrets in query strings) never reach a log line."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chitram_falcon import redaction


def access_record(target: str) -> logging.LogRecord:
    """A record as uvicorn's access logger makes it."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "DELETE", target, "1.1", 204),
        None,
    )


@given(
    token=st.text(
        alphabet=st.characters(categories=["L", "N"]) | st.sampled_from("-_.~"), min_size=1
    )
)
def test_a_delete_token_in_the_query_is_redacted(token: str) -> None:
    record = access_record(f"/api/v1/images/abc?x=1&delete_token={token}&y=2")
    redaction.RedactSecrets().filter(record)
    line = record.getMessage()
    assert f"delete_token={token}" not in line
    assert "delete_token=[redacted]&y=2" in line and "x=1" in line


@pytest.mark.parametrize(
    "target",
    [
        "/a?delete_token=SECRET",
        "/a?DELETE_TOKEN=SECRET",
        "/a?delete%5Ftoken=SECRET",
        "/a?token=SECRET",
        "/a?refresh_token=SECRET&access_token=SECRET",
    ],
)
def test_every_spelling_is_redacted(target: str) -> None:
    record = access_record(target)
    redaction.RedactSecrets().filter(record)
    assert "SECRET" not in record.getMessage()


def test_the_app_installs_the_filter_on_the_access_loggers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from chitram_core import Settings
    from chitram_falcon.app import create_app

    create_app(settings=Settings(jwt_secret="k" * 40, web_ui=False))
    logger = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        logger.info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "DELETE", "/x?delete_token=SECRET", "1.1", 204
        )
    assert "SECRET" not in caplog.text and "[redacted]" in caplog.text


@given(
    name=st.sampled_from(sorted(redaction.SECRET_PARAMS)),
    upper=st.booleans(),
    value=st.text(alphabet=st.characters(categories=["L", "N"]), min_size=4, max_size=20),
)
def test_our_access_line_and_other_servers_lines_hide_the_same_parameters(
    name: str, upper: bool, value: str
) -> None:
    """One list of secret parameters: the parsed query of our access line and the free-text
    filter for uvicorn's / hypercorn's / gunicorn's lines both hide every one of them."""
    from chitram_falcon.observed import redact_query

    spelled = name.upper() if upper else name
    query = f"a=1&{spelled}={value}&b=2"
    for line in (redact_query(query), redaction.redact(f"/x?{query}")):
        assert f"={value}&" not in line and f"={redaction.REDACTED}&b=2" in line
        assert "a=1&" in line
