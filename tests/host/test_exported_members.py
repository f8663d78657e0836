"""The public names of ``chitram_core`` (and ``chitram_falcon``), pinned as httpx pins its own.

Adding or removing a public name is an API change: update ``__all__``, the list here and
CHANGELOG.md together.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import chitram_core
import chitram_falcon

PUBLIC_API = [
    "VERSION",
    "Chitram",
    "ChitramError",
    "HealthReport",
    "Image",
    "Page",
    "Principal",
    "RateLimit",
    "Session",
    "Settings",
    "SweepReport",
    "Thumbnail",
    "User",
    "converter",
    "errors",
    "to_json",
]
# What chitram_core/__init__.py imports for its own lazy loading; not part of the API.
MODULE_HELPERS = {"annotations", "import_module", "TYPE_CHECKING", "Any"}


def test_all_is_the_pinned_public_api() -> None:
    assert sorted(chitram_core.__all__) == sorted(PUBLIC_API)
    assert len(set(chitram_core.__all__)) == len(chitram_core.__all__)


def test_every_exported_name_resolves_from_where_it_is_defined() -> None:
    for name in chitram_core.__all__:
        value = getattr(chitram_core, name)
        if name == "errors":
            assert value is importlib.import_module("chitram_core.errors")
            continue
        home = getattr(value, "__module__", None)
        if home is not None and home.startswith("chitram_core."):
            assert getattr(importlib.import_module(home), name) is value


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from chitram_core import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(chitram_core.__all__)


def test_nothing_public_is_left_out_of_all() -> None:
    # Names loaded lazily show up in vars() once asked for; after loading every export, every
    # public attribute of the package is either exported or a submodule.
    for name in chitram_core.__all__:
        getattr(chitram_core, name)
    public = {
        name
        for name, value in vars(chitram_core).items()
        if not name.startswith("_") and not _is_submodule(value)
    }
    assert public - set(chitram_core.__all__) == MODULE_HELPERS


def test_unknown_names_raise_attribute_error() -> None:
    try:
        chitram_core.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:
        raise AssertionError("chitram_core.NoSuchThing resolved")


def test_importing_the_package_and_the_plugin_imports_no_web_framework_or_client() -> None:
    code = (
        "import sys, chitram_core\n"
        "for name in chitram_core.__all__: getattr(chitram_core, name)\n"
        "import chitram_core.testing.pytest_plugin\n"
        "bad = sorted(m for m in ('falcon', 'starlette', 'fastapi', 'django', 'flask', 'httpx')"
        " if m in sys.modules)\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_chitram_falcon_exports_what_it_defines() -> None:
    public = sorted(
        name
        for name, value in vars(chitram_falcon).items()
        if not name.startswith("_") and not _is_submodule(value)
    )
    assert sorted(chitram_falcon.__all__) == public


def _is_submodule(value: object) -> bool:
    return type(value).__name__ == "module"
