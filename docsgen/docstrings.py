"""Which public objects have no docstring: every name of ``chitram_core.__all__`` and every
plugin protocol, with their public members (a module's public names, a class's attributes and
methods). A member that overrides one its base class declares is covered by the base's.
"""

from __future__ import annotations

import importlib

import griffe

from docsgen import reference


def _runtime(path: str) -> object | None:
    module_path, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module_path), name)
    except (ImportError, AttributeError):
        return None


def _overrides(owner: griffe.Class, name: str) -> bool:
    cls = _runtime(owner.path)
    return isinstance(cls, type) and any(name in vars(base) for base in cls.__mro__[1:])


def _walk(obj: griffe.Object | griffe.Alias, top: bool, missing: list[str]) -> None:
    if obj.is_alias:
        return
    if obj.docstring is None or not obj.docstring.value.strip():
        missing.append(obj.path)
    if isinstance(obj, griffe.Class) or (top and isinstance(obj, griffe.Module)):
        for name, member in obj.members.items():
            if name.startswith("_") or member.is_alias:
                continue
            if isinstance(obj, griffe.Module) and not member.is_public:
                continue
            if isinstance(obj, griffe.Class) and _overrides(obj, name):
                continue
            _walk(member, False, missing)


def public_paths() -> list[str]:
    """Dotted paths of everything whose docstrings must be complete."""
    paths = list(reference.public_names().values())
    for protocols in reference.plugin_protocols().values():
        paths.extend(protocols)
    return paths


def missing_docstrings() -> list[str]:
    """Dotted paths of the public objects with no docstring, sorted."""
    missing: list[str] = []
    for path in public_paths():
        _walk(reference.lookup(path), True, missing)
    return sorted(set(missing))
