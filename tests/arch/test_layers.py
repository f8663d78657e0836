"""The layering of ``chitram_core``, checked from the source with ``ast`` (nothing is imported).

- Every SQL statement lives in ``chitram_core/db/``: elsewhere sqlalchemy is imported only for
  what is not SQL (the connection type flows pass along, and its exceptions).
- Importing any module never runs into an import cycle: the graph of module-level imports
  (not those under ``if TYPE_CHECKING:`` or inside functions) is acyclic.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import chitram_core

PACKAGE = Path(chitram_core.__file__).parent
DB = PACKAGE / "db"

# (module, name) pairs of sqlalchemy that build no SQL; "*" is every name of that module.
NOT_SQL = {
    ("sqlalchemy.exc", "*"),  # exceptions, e.g. IntegrityError
    ("sqlalchemy.ext.asyncio", "AsyncConnection"),  # the type a flow hands to db/ verbs
}

# Files allowed, for a while, to build SQL outside db/ (work moving it there in flight); an
# entry whose file no longer builds SQL fails the test, so the set cannot go stale. Empty: every
# statement is in db/. (chitram_core/jobs/runner.py only passes AsyncConnection along, and
# tracing.py imports OpenTelemetry's SQLAlchemy instrumentor and no sqlalchemy name.)
PENDING: set[str] = set()


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def sql_imports(tree: ast.AST) -> list[str]:
    """Every sqlalchemy import in the file (anywhere, even in functions) that is not NOT_SQL."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                is_sqlalchemy = alias.name.split(".")[0] == "sqlalchemy"
                if is_sqlalchemy and (alias.name, "*") not in NOT_SQL:
                    found.append(f"import {alias.name} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            if module != "sqlalchemy" and not module.startswith("sqlalchemy."):
                continue
            for alias in node.names:
                if (module, "*") in NOT_SQL or (module, alias.name) in NOT_SQL:
                    continue
                found.append(f"from {module} import {alias.name} (line {node.lineno})")
    return found


def test_sql_is_built_only_in_db() -> None:
    offenders: dict[str, list[str]] = {}
    clean_pending: list[str] = []
    for _, path in _modules():
        if path.is_relative_to(DB):
            continue
        found = sql_imports(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        rel = _rel(path)
        if rel in PENDING:
            if not found:
                clean_pending.append(rel)
        elif found:
            offenders[rel] = found
    assert not offenders, f"SQL built outside chitram_core/db/: {offenders}"
    assert not clean_pending, f"no longer building SQL, remove from PENDING: {clean_pending}"
    missing = PENDING - {_rel(path) for _, path in _modules()}
    assert not missing, f"PENDING names files that do not exist: {missing}"


def test_the_reference_app_builds_no_sql_either() -> None:
    """``chitram_falcon`` (the app and the ``chitram`` command) calls ``chitram_core.db`` verbs;
    it never builds a statement of its own."""
    import chitram_falcon

    offenders = {
        path.name: found
        for path in sorted(Path(chitram_falcon.__file__).parent.rglob("*.py"))
        if (found := sql_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))))
    }
    assert not offenders, f"SQL built in chitram_falcon: {offenders}"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements run when the module is imported: the module body, into ``if``/``try``/
    ``with`` blocks and class bodies, not into functions nor ``if TYPE_CHECKING:``."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        yield node
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_nodes(node.body)
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_nodes(block)
            for handler in node.handlers:
                yield from _import_time_nodes(handler.body)
        elif isinstance(node, ast.With | ast.AsyncWith | ast.ClassDef):
            yield from _import_time_nodes(node.body)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def import_graph() -> dict[str, set[str]]:
    """Module -> the chitram_core modules it imports at import time (``from pkg import sub``
    counts as importing ``pkg.sub`` when ``sub`` is a module, else ``pkg``)."""
    known = {name: path for name, path in _modules()}
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _import_time_nodes(tree.body):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.append(sub if sub in known else source)
            graph[name].update(t for t in targets if t in known and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same module, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_chitram_core_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "chitram_core.health" in graph and "chitram_core.chitram" in graph
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_health_does_not_import_the_composition_root() -> None:
    tree = ast.parse((PACKAGE / "health.py").read_text(encoding="utf-8"))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "chitram_core.chitram" not in imported


MUTATORS = {"append", "extend", "add", "update", "insert", "setdefault"}


def wiring_after_construction(tree: ast.AST) -> list[str]:
    """``self.part.attr = ...`` or ``self.part.attr.append(...)``: a collaborator changed after
    it was built, instead of being given what it needs in its constructor."""

    def on_a_part(node: ast.expr) -> bool:
        # self.part.attr: an attribute of an attribute of self
        return (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Attribute)
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "self"
        )

    found: list[str] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in MUTATORS
        ):
            targets = [node.func.value]
        found.extend(f"line {t.lineno}: {ast.unparse(t)}" for t in targets if on_a_part(t))
    return found


def test_the_composition_root_sets_nothing_onto_a_part_after_building_it() -> None:
    tree = ast.parse((PACKAGE / "chitram.py").read_text(encoding="utf-8"))
    assert wiring_after_construction(tree) == []


# The checks must be able to fail: each is shown a small case it has to catch.


def test_the_wiring_check_catches_assignments_and_appends_onto_a_part() -> None:
    tree = ast.parse(
        "class C:\n"
        "    def open(self):\n"
        "        self.images = make()\n"
        "        self.images.thumbnailer = self.thumbnails\n"
        "        self.images.record_hooks.append(self.tags.enqueue)\n"
        "        self.thumbnails.attach(runner)\n"
    )
    assert wiring_after_construction(tree) == [
        "line 4: self.images.thumbnailer",
        "line 5: self.images.record_hooks",
    ]


def test_the_sql_check_catches_statement_builders_and_lets_types_through() -> None:
    source = (
        "import sqlalchemy as sa\n"
        "from sqlalchemy import select, func\n"
        "from sqlalchemy.exc import IntegrityError\n"
        "from sqlalchemy.ext.asyncio import AsyncConnection\n"
        "def f():\n"
        "    from sqlalchemy.dialects import postgresql\n"
    )
    found = sql_imports(ast.parse(source))
    assert [entry.split(" (")[0] for entry in found] == [
        "import sqlalchemy",
        "from sqlalchemy import select",
        "from sqlalchemy import func",
        "from sqlalchemy.dialects import postgresql",
    ]


def test_the_cycle_check_finds_a_cycle_and_accepts_a_tree() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_skips_type_checking_and_function_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import os\n"
        "if TYPE_CHECKING:\n"
        "    import json\n"
        "try:\n"
        "    import re\n"
        "except ImportError:\n"
        "    import sre\n"
        "class A:\n"
        "    import abc\n"
        "def f():\n"
        "    import sys\n"
    )
    names = {
        alias.name
        for node in _import_time_nodes(tree.body)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert names == {"os", "re", "sre", "abc"}
