"""Everything a contributor runs: ``nox`` (lint, typecheck, tests on every Python found).

- ``tests-3.11``, ``tests-3.12``, ``tests-3.13``: the suite with the locked versions
  (``requirements/dev.lock.txt``); a Python that is not installed is skipped.
- ``lint``, ``typecheck``: ruff and ``mypy --strict`` with the locked versions.
- ``latest``: mypy and the suite against the newest releases our bounds allow, ignoring the
  lock, so a break in a new release shows up here first, not as a red CI on an unrelated change.
- ``docs``: serve the documentation site on http://127.0.0.1:8000 (``nox -s docs -- build``
  builds it into ``site/`` with ``--strict``, as CI does).
- ``lock``: refresh the lock (one universal file for every supported Python), then run
  ``latest``'s checks through CI before committing it.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.error_on_missing_interpreters = False

PYTHONS = ["3.11", "3.12", "3.13"]
LOCK = "requirements/dev.lock.txt"


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    session.install("-c", LOCK, "-e", ".[dev]")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("-c", LOCK, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-c", LOCK, "-e", ".[dev]")
    session.run("mypy")


@nox.session
def docs(session: nox.Session) -> None:
    # ruff formats the signatures; server and metrics: the route and metrics pages import them
    session.install("-c", LOCK, "-e", ".[docs,server,metrics]", "ruff")
    if session.posargs[:1] == ["build"]:
        session.run("mkdocs", "build", "--strict", *session.posargs[1:])
    else:
        session.run("mkdocs", "serve", *session.posargs)


@nox.session
def latest(session: nox.Session) -> None:
    session.install("--upgrade", "--upgrade-strategy", "eager", "-e", ".[dev]")
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.run("mypy")
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *session.posargs)


@nox.session
def lock(session: nox.Session) -> None:
    session.install("uv")
    session.run(
        "uv",
        "pip",
        "compile",
        "pyproject.toml",
        "--extra",
        "dev",
        "--universal",
        "--python-version",
        "3.11",
        "--upgrade",
        "--annotation-style",
        "line",
        "--custom-compile-command",
        "nox -s lock",
        "-o",
        LOCK,
    )
