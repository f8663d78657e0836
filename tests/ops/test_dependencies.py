"""Reproducible installs: the lock agrees with pyproject's bounds, pins every direct
dependency, and the versions we rely on the internals of are bounded above."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements" / "dev.lock.txt"
BOUNDED_ABOVE = {"sqlalchemy", "falcon", "uvicorn"}  # we implement or override their internals


def direct_requirements() -> list[Requirement]:
    """The dependencies and those of the ``dev`` extra, with the extras it names (the lock's
    scope)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    found = [Requirement(line) for line in project["dependencies"]]
    todo, seen = ["dev"], set()
    while todo:
        extra = todo.pop()
        seen.add(extra)
        for requirement in map(Requirement, extras[extra]):
            if canonicalize_name(requirement.name) == "chitram":
                todo += [e for e in requirement.extras if e not in seen]
            else:
                found.append(requirement)
    return found


def locked() -> dict[str, list[tuple[str, Marker | None]]]:
    """name -> [(version, marker)]; a universal lock may pin a package once per Python range."""
    pins: dict[str, list[tuple[str, Marker | None]]] = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?", line)
        assert match, f"not an exact pin in the lock: {raw!r}"
        name, version, marker = match.groups()
        pins.setdefault(canonicalize_name(name), []).append(
            (version, Marker(marker) if marker else None)
        )
    return pins


def test_every_direct_dependency_is_pinned_within_its_bounds() -> None:
    pins = locked()
    assert len(pins) > 50
    for requirement in direct_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in {LOCK.name}: run `nox -s lock`"
        for version, _marker in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{LOCK.name} pins {name}=={version}, outside pyproject's "
                f"{requirement.specifier}: run `nox -s lock`"
            )


@pytest.mark.parametrize("name", sorted(BOUNDED_ABOVE))
def test_libraries_whose_internals_we_use_have_an_upper_bound_and_match_it(name: str) -> None:
    specifiers = [r.specifier for r in direct_requirements() if canonicalize_name(r.name) == name]
    assert specifiers, f"{name} is not a dependency"
    for specifier in specifiers:
        assert any(s.operator in ("<", "<=", "==", "~=") for s in specifier), (
            f"{name}{specifier} has no upper bound"
        )
    installed = metadata.version(name)
    assert all(SpecifierSet(str(s)).contains(installed) for s in specifiers), (
        f"installed {name} {installed} is outside {specifiers}"
    )
