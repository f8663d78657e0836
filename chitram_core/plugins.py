"""Entry-point discovery for every plugin group, in one place.

Lookups are lazy and cached: nothing is imported until a plugin is asked for by name. A plugin
that fails to import is reported by name with the reason, and only when it is the one asked for.
Tests and host applications can register factories in-process with :func:`register`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from chitram_core.errors import PluginError

log = logging.getLogger(__name__)

STORAGE = "chitram.storage"
AUTH = "chitram.auth"
CACHE = "chitram.cache"
TAGGERS = "chitram.taggers"
MODERATORS = "chitram.moderators"
GROUPS = (STORAGE, AUTH, CACHE, TAGGERS, MODERATORS)

_INSTALL_HINTS = {
    (AUTH, "supabase"): "pip install 'chitram[supabase]'",
    (CACHE, "redis"): "pip install 'chitram[redis]'",
    (TAGGERS, "openai"): "pip install 'chitram[openai]'",
    (MODERATORS, "http"): "pip install 'chitram[fetch]'",
}

_lock = threading.Lock()
_registered: dict[str, dict[str, Callable[..., Any]]] = {group: {} for group in GROUPS}
_loaded: dict[tuple[str, str], Callable[..., Any]] = {}
_entry_points: dict[str, dict[str, EntryPoint]] = {}


def _group_entry_points(group: str) -> dict[str, EntryPoint]:
    with _lock:
        if group not in _entry_points:
            _entry_points[group] = {ep.name: ep for ep in entry_points(group=group)}
        return _entry_points[group]


def register(group: str, name: str, factory: Callable[..., Any]) -> None:
    """Register a factory in-process; it wins over an entry point of the same name."""
    if group not in _registered:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {GROUPS}")
    with _lock:
        _registered[group][name] = factory
        _loaded.pop((group, name), None)


def unregister(group: str, name: str) -> None:
    with _lock:
        _registered.get(group, {}).pop(name, None)
        _loaded.pop((group, name), None)


def available(group: str) -> list[str]:
    """Names that can be asked for in ``group`` (loaded or not)."""
    return sorted(set(_group_entry_points(group)) | set(_registered.get(group, {})))


def load(group: str, name: str) -> Callable[..., Any]:
    """The factory registered as ``name`` in ``group``; :class:`PluginError` if it cannot load."""
    with _lock:
        if name in _registered.get(group, {}):
            return _registered[group][name]
        cached = _loaded.get((group, name))
    if cached is not None:
        return cached
    eps = _group_entry_points(group)
    if name not in eps:
        known = ", ".join(available(group)) or "none"
        raise PluginError(
            f"No {group} plugin named {name!r} is installed (available: {known})",
            group=group,
            plugin=name,
        )
    try:
        factory: Callable[..., Any] = eps[name].load()
    except Exception as exc:  # a broken plugin must be reported, whatever it raised
        hint = _INSTALL_HINTS.get((group, name))
        reason = f"{type(exc).__name__}: {exc}"
        message = f"The {group} plugin {name!r} failed to load ({reason})"
        if hint and isinstance(exc, ImportError):
            message += f"; install it with {hint}"
        log.error(message)
        raise PluginError(message, group=group, plugin=name, reason=reason) from exc
    if not callable(factory):
        raise PluginError(f"The {group} plugin {name!r} is not callable", group=group, plugin=name)
    with _lock:
        _loaded[(group, name)] = factory
    return factory


def refresh() -> None:
    """Forget cached entry points, e.g. after installing a plugin package at run time."""
    with _lock:
        _entry_points.clear()
        _loaded.clear()
