"""The settings, error-code and metrics tables, from the code."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from functools import cache
from typing import Any

import attrs
import griffe

from chitram_core.errors import ERRORS_BY_CODE, ChitramError
from chitram_core.settings import Settings


def cell(text: object) -> str:
    """``text`` safe inside a Markdown table cell (no pipes, no line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


@cache
def _settings_class() -> griffe.Class:
    module = griffe.load("chitram_core.settings", docstring_parser="google")
    found = module["Settings"]
    assert isinstance(found, griffe.Class)
    return found


def setting_descriptions() -> dict[str, str | None]:
    """Each field of :class:`Settings` and its attribute docstring (None when it has none)."""
    cls = _settings_class()
    out: dict[str, str | None] = {}
    for field in attrs.fields(Settings):
        member = cls.members.get(field.name)
        doc = member.docstring if member is not None else None
        out[field.name] = doc.value.strip() if doc is not None and doc.value.strip() else None
    return out


def _default(field: attrs.Attribute[Any]) -> str:
    default = field.default
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        default = default.factory()  # type: ignore[attr-defined]
    if default is None:
        return "unset"
    if isinstance(default, tuple):
        return ",".join(str(item) for item in default) if default else "empty"
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, enum.Enum):
        return str(default.value)
    if field.repr is False:
        return "(hidden)"
    return str(default)


def _type_name(field: attrs.Attribute[Any]) -> str:
    return str(field.type).replace("typing.", "")


def settings_rows() -> Iterator[tuple[str, str, str, str, str]]:
    """(variable, field, type, default, description) for every field of :class:`Settings`."""
    descriptions = setting_descriptions()
    for field in attrs.fields(Settings):
        yield (
            "CHITRAM_" + field.name.upper(),
            field.name,
            _type_name(field),
            _default(field),
            descriptions[field.name] or "",
        )


def settings_table() -> str:
    """The Markdown table of every setting."""
    lines = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    for variable, name, type_name, default, description in settings_rows():
        lines.append(
            f"| <a id='{name}'></a>`{variable}` | `{cell(type_name)}` | `{cell(default)}` "
            f"| {cell(description)} |"
        )
    return "\n".join(lines) + "\n"


def error_rows() -> Iterator[tuple[str, int, str, type[ChitramError]]]:
    """(code, HTTP status, default message, class) of every code a client can see."""
    for code, cls in sorted(ERRORS_BY_CODE.items(), key=lambda item: (item[1].status, item[0])):
        yield code, cls.status, cls.default_message, cls


def errors_table() -> str:
    """The Markdown table of every error code, by status."""
    lines = [
        "| code | status | default message | exception |",
        "|---|---|---|---|",
    ]
    for code, status, message, cls in error_rows():
        ref = f"[`{cls.__name__}`][{cls.__module__}.{cls.__qualname__}]"
        lines.append(f"| <a id='{code}'></a>`{code}` | {status} | {cell(message)} | {ref} |")
    return "\n".join(lines) + "\n"


def metric_rows() -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(name as scraped, type, help, label names) of every metric an observer records.

    The collectors are registered into a fresh registry through the same function the
    Prometheus observer uses, so a metric added there is listed here.
    """
    from prometheus_client import CollectorRegistry

    from chitram_core import metrics

    registry = CollectorRegistry()
    metrics.observer(registry)
    rows = []
    for collector in list(registry._collector_to_names):
        name = getattr(collector, "_name", None)
        kind = getattr(collector, "_type", None)
        if name is None or kind is None:
            continue
        scraped = f"{name}_total" if kind == "counter" else name
        labels = tuple(getattr(collector, "_labelnames", ()))
        rows.append((scraped, kind, collector._documentation, labels))
    return sorted(rows)


def metrics_table() -> str:
    """The Markdown table of every metric."""
    lines = ["| metric | type | labels | what it counts |", "|---|---|---|---|"]
    for name, kind, help_text, labels in metric_rows():
        shown = ", ".join(f"`{label}`" for label in labels) or "none"
        lines.append(f"| `{name}` | {kind} | {shown} | {cell(help_text)} |")
    return "\n".join(lines) + "\n"
