"""HTML from the package's templates, escaped by default.

``string.Template`` files with ``$name`` placeholders; every value is HTML-escaped unless it is
:class:`Markup` (HTML this module or a resource built from escaped parts). No template engine
dependency, and no way to forget an escape.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Iterable, Mapping
from importlib import resources
from string import Template
from typing import Any


class Markup(str):
    """Text that is already HTML."""

    __slots__ = ()


def escape(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[Markup]) -> Markup:
    return Markup("".join(escape(part) for part in parts))


@functools.cache
def _template(name: str) -> Template:
    text = resources.files("chitram_falcon.web").joinpath("templates", name).read_text("utf-8")
    return Template(text.rstrip("\n"))


def render(name: str, values: Mapping[str, Any] | None = None, **more: Any) -> Markup:
    merged = {**(values or {}), **more}
    return Markup(_template(name).substitute({k: escape(v) for k, v in merged.items()}))


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
