"""The repository explains itself: no code, test or doc cites a document it does not contain,
or the development rounds it was written in (a newcomer can follow neither)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".git", ".venv", ".nox", "node_modules", "build", "dist"}
# Spelled in pieces so this file does not match itself.
OUTSIDE = re.compile("|".join(["CON" + "TRACT", "wave" + r" [0-9]", "this" + " session"]), re.I)


def files() -> list[Path]:
    found = []
    for suffix in ("*.py", "*.md"):
        for path in ROOT.rglob(suffix):
            if not SKIP.intersection(path.relative_to(ROOT).parts):
                found.append(path)
    return found


def test_nothing_cites_an_outside_document_or_a_development_round() -> None:
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert len(files()) > 100
    assert not hits, "\n".join(hits)
