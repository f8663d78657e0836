"""The Python API reference: a page per public name of ``chitram_core`` and per plugin
protocol, each rendered by mkdocstrings from the code's docstrings.

The names come from ``chitram_core.__all__``; the protocols from the plugin groups in
``chitram_core.plugins.GROUPS`` (group ``chitram.<kind>`` -> the ``Protocol`` classes of
``chitram_core.<kind>.base``, or of ``chitram_core.<kind>`` when it has no ``base``), and the
conformance suites from ``chitram_core/testing/*_conformance.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import cache
from pathlib import Path

import griffe

import chitram_core
from chitram_core import plugins

PACKAGE = Path(chitram_core.__file__).parent


def public_names() -> dict[str, str]:
    """Every name of ``chitram_core.__all__`` -> the dotted path of the object it is."""
    out = {}
    for name in chitram_core.__all__:
        if importlib.util.find_spec(f"chitram_core.{name}") is not None:
            out[name] = f"chitram_core.{name}"
            continue
        value = getattr(chitram_core, name)
        module = getattr(value, "__module__", None)
        if module is None or not hasattr(importlib.import_module(module), name):
            module = chitram_core._EXPORTS[name]
        out[name] = f"{module}.{name}"
    return out


@cache
def _griffe_package() -> griffe.Module:
    loaded = griffe.load("chitram_core", docstring_parser="google", resolve_aliases=False)
    assert isinstance(loaded, griffe.Module)
    return loaded


def lookup(path: str) -> griffe.Object | griffe.Alias:
    """The griffe object at a dotted path of ``chitram_core``."""
    return _griffe_package()[path.removeprefix("chitram_core.")]


def _is_protocol(obj: griffe.Object | griffe.Alias) -> bool:
    if not isinstance(obj, griffe.Class):
        return False
    return any(str(base).rsplit(".", 1)[-1].startswith("Protocol") for base in obj.bases)


def plugin_protocols() -> dict[str, list[str]]:
    """Plugin group -> dotted paths of its protocol classes."""
    out: dict[str, list[str]] = {}
    for group in plugins.GROUPS:
        kind = group.rpartition(".")[2]
        module_path = f"chitram_core.{kind}"
        if (PACKAGE / kind / "base.py").exists():
            module_path += ".base"
        try:
            module = lookup(module_path)
        except KeyError:
            continue
        found = [
            f"{module_path}.{name}"
            for name, member in module.members.items()
            if not name.startswith("_") and not member.is_alias and _is_protocol(member)
        ]
        if found:
            out[group] = found
    return out


def conformance_suites() -> list[str]:
    """Dotted paths of the testing kit's modules: the pytest plugin, the plugin conformance
    suites and the Hypothesis strategies."""
    return [
        f"chitram_core.testing.{path.stem}"
        for path in sorted((PACKAGE / "testing").glob("*.py"))
        if path.stem in {"pytest_plugin", "strategies"} or path.stem.endswith("_conformance")
    ]


def _page(title: str, path: str, extra: str = "", skip: tuple[str, ...] = ()) -> str:
    text = f"# `{title}`\n\n{extra}::: {path}\n"
    if skip:  # members with a page of their own (one primary anchor per object)
        filters = ", ".join(['"!^_"', *(f'"!^{name}$"' for name in skip)])
        text += f"    options:\n      filters: [{filters}]\n"
    return text


def pages() -> dict[str, str]:
    """Path under ``docs/`` -> Markdown, for every generated Python API page."""
    out: dict[str, str] = {}
    index = [
        "# Python API reference",
        "",
        "Generated from the docstrings of the code. The public names are those of "
        "`chitram_core.__all__`: import them from `chitram_core`.",
        "",
        "| name | defined in |",
        "|---|---|",
    ]
    names = public_names()
    for name, path in names.items():
        skip = tuple(
            other.rpartition(".")[2] for other in names.values() if other.rpartition(".")[0] == path
        )
        out[f"api/python/{name}.md"] = _page(
            f"chitram_core.{name}", path, f"Import as `from chitram_core import {name}`.\n\n", skip
        )
        index.append(f"| [`{name}`]({name}.md) | `{path}` |")
    index += ["", "## Plugin protocols", "", "| group | protocol |", "|---|---|"]
    for group, paths in plugin_protocols().items():
        for path in paths:
            name = path.rpartition(".")[2]
            out[f"api/python/plugins/{name}.md"] = _page(
                name,
                path,
                f"The protocol of `{group}` plugins ([Plugins](../../../plugins.md)).\n\n",
            )
            index.append(f"| `{group}` | [`{name}`](plugins/{name}.md) |")
    index += ["", "## Testing kit: the pytest plugin, conformance suites, strategies", ""]
    for path in conformance_suites():
        name = path.rpartition(".")[2]
        out[f"api/python/testing/{name}.md"] = _page(path, path)
        index.append(f"- [`{path}`](testing/{name}.md)")
    index.append("")
    out["api/python/index.md"] = "\n".join(index)
    return out


def nav() -> list[dict[str, str]]:
    """The navigation entries of the generated pages, overview first."""
    entries = [{"Overview": "api/python/index.md"}]
    entries += [{name: f"api/python/{name}.md"} for name in public_names()]
    for paths in plugin_protocols().values():
        for path in paths:
            name = path.rpartition(".")[2]
            entries.append({f"{name} (plugin)": f"api/python/plugins/{name}.md"})
    for path in conformance_suites():
        name = path.rpartition(".")[2]
        entries.append({f"{name}": f"api/python/testing/{name}.md"})
    return entries
