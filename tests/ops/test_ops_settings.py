"""The operations settings: CHITRAM_LOG_FORMAT/LEVEL, CHITRAM_ACCESS_LOG, CHITRAM_METRICS_*."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opskit import chitram, clean_env

from chitram_core import Settings
from chitram_core.errors import ConfigurationError
from chitram_core.metrics import parse_address


def test_the_defaults_log_text_at_info_with_access_lines_and_no_metrics() -> None:
    settings = Settings.from_env({})
    assert (settings.log_format, settings.log_level, settings.access_log) == ("text", "INFO", True)
    assert settings.metrics_address is None and settings.metrics_interval == 15.0


@given(port=st.integers(1, 65535), host=st.sampled_from(["127.0.0.1", "0.0.0.0", "localhost"]))
def test_a_host_and_port_is_a_metrics_address(port: int, host: str) -> None:
    settings = Settings.from_env({"CHITRAM_METRICS_ADDRESS": f"{host}:{port}"})
    assert settings.metrics_address == f"{host}:{port}"
    assert parse_address(settings.metrics_address) == (host, port)


@given(port=st.integers(1, 65535))
def test_an_ipv6_metrics_address_is_bracketed(port: int) -> None:
    assert parse_address(f"[::1]:{port}") == ("::1", port)
    assert Settings.from_env({"CHITRAM_METRICS_ADDRESS": f"[::1]:{port}"}).metrics_address


@pytest.mark.parametrize(
    "bad", ["9464", "host", "host:", ":9464", "host:0", "host:65536", "host:port", "::1:9464"]
)
def test_anything_else_is_refused_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({"CHITRAM_METRICS_ADDRESS": bad})
    assert "CHITRAM_METRICS_ADDRESS" in caught.value.message


def test_an_empty_metrics_address_means_off() -> None:
    assert Settings.from_env({"CHITRAM_METRICS_ADDRESS": ""}).metrics_address is None


@pytest.mark.parametrize(
    ("variable", "bad"),
    [
        ("CHITRAM_LOG_FORMAT", "xml"),
        ("CHITRAM_LOG_LEVEL", "loud"),
        ("CHITRAM_ACCESS_LOG", "sometimes"),
        ("CHITRAM_METRICS_INTERVAL", "0"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(variable: str, bad: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Settings.from_env({variable: bad})
    assert variable in caught.value.message


def test_the_format_and_level_are_case_insensitive() -> None:
    settings = Settings.from_env({"CHITRAM_LOG_FORMAT": " JSON ", "CHITRAM_LOG_LEVEL": "warning"})
    assert (settings.log_format, settings.log_level) == ("json", "WARNING")


def test_a_bad_log_format_stops_the_command_with_one_line(tmp_path: Path) -> None:
    result = chitram(["db", "upgrade"], tmp_path, clean_env(CHITRAM_LOG_FORMAT="xml"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "CHITRAM_LOG_FORMAT" in result.stderr
