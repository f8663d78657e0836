"""The layering of ``chitram_core`` and ``chitram_falcon``, checked from the source with ``ast``
(nothing is imported).

- Every SQL statement lives in ``chitram_core/db/``: elsewhere sqlalchemy is imported only for
  what is not SQL (the connection type flows pass along, and its exceptions).
- No import circles, counting every import: at module level, inside functions (lazy), under
  ``if TYPE_CHECKING:``, and ``importlib.import_module("a.literal.name")``. A lazy or
  type-only import hides a circle from the interpreter, not from the reader: two modules that
  need each other are one module in two files.
- ``chitram_falcon`` reaches the database and the stores only through the SDK (``Chitram``, its
  ``admin`` surface): it imports no ``chitram_core.db`` or ``chitram_core.storage`` module.
- ``chitram_core/images/`` is a leaf: pure image knowledge over Pillow, importing neither the
  engine that runs it nor the settings.
- No module of ``chitram_core`` is over 600 lines.

Exceptions are listed below, each with why, and each fails the test once it is no longer needed,
so none can go stale.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import chitram_core
import chitram_falcon

PACKAGE = Path(chitram_core.__file__).parent
FALCON = Path(chitram_falcon.__file__).parent
DB = PACKAGE / "db"
MAX_LINES = 600

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

# Import edges allowed to close a circle, for a while: (importer, imported) -> why. An entry
# fails the test when the edge is gone or no longer closes a circle.
KNOWN_CIRCLES: dict[tuple[str, str], str] = {}

# Imports from chitram_core/images/ into the engine or the settings allowed for a while, by
# importing module (the same in-flight work as above); an entry fails once it imports neither.
IMAGES_NOT_YET_LEAF: dict[str, str] = {}

# Modules of chitram_core allowed over MAX_LINES for a while, with why; an entry fails once the
# file is within the limit.
LONG_FOR_NOW: dict[str, str] = {}


# -- reading the source ----------------------------------------------------------------------


def _modules(package: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _all_modules() -> dict[str, Path]:
    return {name: path for package in (PACKAGE, FALCON) for name, path in _modules(package)}


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


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


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _is_import_module(node: ast.Call) -> bool:
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    return name == "import_module"


def imported_names(module: str, is_package: bool, tree: ast.AST) -> list[tuple[str, int]]:
    """Every module name the source imports, anywhere in it, with its line: ``import a.b``,
    ``from a import b`` (as ``a.b``: :func:`_owner` finds the module ``b`` is, or lives in),
    relative imports resolved, and ``import_module("a.b")`` with a literal name."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, is_package, node)
            found.extend((f"{source}.{alias.name}", node.lineno) for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and _is_import_module(node)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.args[0].value, node.lineno))
    return found


def _owner(name: str, known: dict[str, Path]) -> str | None:
    """The module of ours that ``name`` is, or lives in (``a.b.func`` -> ``a.b``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(known: dict[str, Path] | None = None) -> dict[str, set[str]]:
    """Module -> the modules of both packages it imports, by any of :func:`imported_names`.

    ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to ``pkg``.
    An import is an edge to the module it names, not to the packages above it: the top-level
    ``__init__`` files re-export from below them, and every module sits below them.
    """
    known = known if known is not None else _all_modules()
    graph: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        for target, _line in imported_names(name, path.name == "__init__.py", _parse(path)):
            owner = _owner(target, known)
            if owner is not None and owner != name:
                graph[name].add(owner)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of modules that import each other (Tarjan's algorithm, without recursion);
    only groups of two or more, each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work.append((root, iter(sorted(graph[root]))))
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph.get(target, ())))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
    return sorted(groups)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same module, or None."""
    for group in strongly_connected(graph):
        return _cycle_in(graph, group)
    return None


def _cycle_in(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected ``group``."""
    members = set(group)
    start = group[0]
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for target in sorted(graph[node] & members):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    raise AssertionError(f"not strongly connected: {group}")  # pragma: no cover


def reaches(graph: dict[str, set[str]], source: str, target: str) -> bool:
    seen = {source}
    todo = [source]
    while todo:
        for nxt in graph[todo.pop()]:
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


# -- the rules -------------------------------------------------------------------------------


def test_sql_is_built_only_in_db() -> None:
    offenders: dict[str, list[str]] = {}
    clean_pending: list[str] = []
    for _, path in _modules(PACKAGE):
        if path.is_relative_to(DB):
            continue
        found = sql_imports(_parse(path))
        rel = _rel(path)
        if rel in PENDING:
            if not found:
                clean_pending.append(rel)
        elif found:
            offenders[rel] = found
    assert not offenders, f"SQL built outside chitram_core/db/: {offenders}"
    assert not clean_pending, f"no longer building SQL, remove from PENDING: {clean_pending}"
    missing = PENDING - {_rel(path) for _, path in _modules(PACKAGE)}
    assert not missing, f"PENDING names files that do not exist: {missing}"


def test_the_reference_app_builds_no_sql_either() -> None:
    offenders = {
        path.name: found for _, path in _modules(FALCON) if (found := sql_imports(_parse(path)))
    }
    assert not offenders, f"SQL built in chitram_falcon: {offenders}"


def test_no_import_circles_in_either_package() -> None:
    graph = import_graph()
    assert "chitram_core.health" in graph and "chitram_falcon.cli" in graph
    stale = [edge for edge in KNOWN_CIRCLES if edge[1] not in graph[edge[0]]]
    stale += [
        edge for edge in KNOWN_CIRCLES if edge not in stale and not reaches(graph, *edge[::-1])
    ]
    assert not stale, f"no longer closing a circle, remove from KNOWN_CIRCLES: {stale}"
    for importer, imported in KNOWN_CIRCLES:
        graph[importer].discard(imported)
    circles = [" -> ".join(_cycle_in(graph, group)) for group in strongly_connected(graph)]
    assert not circles, "import circles (one path through each group):\n" + "\n".join(circles)


def test_the_reference_app_reaches_data_only_through_the_sdk() -> None:
    known = _all_modules()
    offenders: dict[str, list[str]] = {}
    for name, path in _modules(FALCON):
        for target, line in imported_names(name, path.name == "__init__.py", _parse(path)):
            owner = _owner(target, known) or ""
            if any(
                owner == p or owner.startswith(p + ".")
                for p in ("chitram_core.db", "chitram_core.storage")
            ):
                offenders.setdefault(_rel_any(path), []).append(f"{owner} (line {line})")
    offenders = {rel: sorted(set(found)) for rel, found in offenders.items()}
    assert not offenders, f"chitram_falcon imports the database or storage layer: {offenders}"


def _rel_any(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_images_is_a_leaf_package() -> None:
    known = _all_modules()
    forbidden = ("chitram_core.engine", "chitram_core.settings")
    offenders: dict[str, list[str]] = {}
    for name, path in known.items():
        if not name.startswith("chitram_core.images."):
            continue
        for target, line in imported_names(name, path.name == "__init__.py", _parse(path)):
            owner = _owner(target, known) or ""
            if any(owner == p or owner.startswith(p + ".") for p in forbidden):
                offenders.setdefault(name, []).append(f"{owner} (line {line})")
    stale = sorted(set(IMAGES_NOT_YET_LEAF) - set(offenders))
    assert not stale, f"images modules now a leaf, remove from IMAGES_NOT_YET_LEAF: {stale}"
    unexpected = {k: v for k, v in offenders.items() if k not in IMAGES_NOT_YET_LEAF}
    assert not unexpected, f"chitram_core/images/ imports the engine or settings: {unexpected}"


def test_no_module_of_the_sdk_is_over_600_lines() -> None:
    lengths = {
        _rel(path): len(path.read_text(encoding="utf-8").splitlines())
        for _, path in _modules(PACKAGE)
    }
    too_long = {rel: n for rel, n in lengths.items() if n > MAX_LINES and rel not in LONG_FOR_NOW}
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"
    stale = sorted(rel for rel in LONG_FOR_NOW if lengths.get(rel, 0) <= MAX_LINES)
    assert not stale, f"within {MAX_LINES} lines now, remove from LONG_FOR_NOW: {stale}"


def test_health_does_not_import_the_composition_root() -> None:
    imported = {
        node.module
        for node in ast.walk(_parse(PACKAGE / "health.py"))
        if isinstance(node, ast.ImportFrom) and node.module
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
    assert wiring_after_construction(_parse(PACKAGE / "chitram.py")) == []


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


def test_the_cycle_check_finds_every_circle_and_accepts_a_tree() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "a"}, "f": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle_in(graph, ["d", "e"]) == ["d", "e", "d"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert reaches(graph, "f", "c") and not reaches(graph, "a", "f")


def test_the_graph_counts_lazy_type_only_and_import_module_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "import importlib\n"
        "import pkg.a\n"
        "from pkg import VERSION\n"
        "if TYPE_CHECKING:\n"
        "    from pkg.b import Thing\n"
        "def f():\n"
        "    from . import c\n"
        "    from .d import helper\n"
        "    importlib.import_module('pkg.e')\n"
    )
    known = {f"pkg.{n}": Path(f"pkg/{n}.py") for n in "abcdef"} | {"pkg": Path("pkg/__init__.py")}
    found = {_owner(name, known) for name, _line in imported_names("pkg.f", False, tree)} - {None}
    assert found == {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d", "pkg.e"}
