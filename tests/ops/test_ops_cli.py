"""The ``chitram`` command's operations: --version, db current/upgrade/downgrade, sweep progress."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from opskit import PYTHON, chitram, clean_env


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    result = chitram(["--version"], tmp_path, clean_env())
    assert result.returncode == 0
    assert result.stdout.startswith(f"chitram {version('chitram')} (image formats: jpeg, ")
    script = Path(sys.executable).parent / "chitram"
    if script.exists():  # the console script, as installed
        direct = subprocess.run([str(script), "--version"], capture_output=True, text=True)
        assert direct.stdout == result.stdout


def test_db_current_upgrade_downgrade(tmp_path: Path) -> None:
    env = clean_env()
    before = chitram(["db", "current"], tmp_path, env)
    assert before.returncode == 0, before.stderr
    assert before.stdout.startswith("none")
    assert chitram(["db", "upgrade"], tmp_path, env).returncode == 0
    at_head = chitram(["db", "current"], tmp_path, env)
    assert at_head.stdout.strip().endswith("(head)"), at_head.stdout
    revision = at_head.stdout.split()[0]
    down = chitram(["db", "downgrade", "base"], tmp_path, env)
    assert down.returncode == 0, down.stderr
    assert chitram(["db", "current"], tmp_path, env).stdout.startswith("none")
    assert chitram(["db", "upgrade", revision], tmp_path, env).returncode == 0
    assert chitram(["db", "current"], tmp_path, env).stdout.split()[0] == revision


@pytest.mark.parametrize("command", [["db", "downgrade", "nonsense"], ["db", "upgrade", "0999"]])
def test_an_unknown_revision_is_one_line_and_status_2(tmp_path: Path, command: list[str]) -> None:
    result = chitram(command, tmp_path, clean_env())
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert command[-1] in result.stderr


def _orphans(tmp_path: Path, count: int) -> None:
    """Bytes in the store that no row names: the sweep queues and removes each."""
    assert chitram(["db", "upgrade"], tmp_path, clean_env()).returncode == 0
    for n in range(count):
        digest = f"{n:064x}"
        path = tmp_path / "chitram-data" / "images" / "blobs" / digest[:2] / digest[2:4] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"orphan %d" % n)


def test_sweep_logs_progress_lines_when_not_on_a_terminal(tmp_path: Path) -> None:
    _orphans(tmp_path, 3)
    env = clean_env(CHITRAM_LOG_FORMAT="json")
    result = chitram(["sweep", "--older-than", "0", "--progress-interval", "0"], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert "orphans queued: 3, removed: 3" in result.stdout
    messages = [json.loads(line)["message"] for line in result.stderr.splitlines()]
    assert "sweep: scan: 1 so far" in messages
    assert "sweep: scan: 3 so far" in messages
    assert [m for m in messages if m.startswith("sweep: remove")] == [
        "sweep: remove: 1/3",
        "sweep: remove: 2/3",
        "sweep: remove: 3/3",
    ]


def test_sweep_progress_lines_are_periodic_not_per_object(tmp_path: Path) -> None:
    _orphans(tmp_path, 5)
    result = chitram(["sweep", "--older-than", "0"], tmp_path, clean_env())  # every 10 s
    assert result.returncode == 0, result.stderr
    removes = [line for line in result.stderr.splitlines() if "sweep: remove" in line]
    # the phase's first and last step are always logged; nothing between within 10 s
    assert len(removes) == 2 and removes[-1].endswith("5/5"), result.stderr


def test_sweep_draws_a_bar_on_a_terminal(tmp_path: Path) -> None:
    _orphans(tmp_path, 4)
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen(
            [PYTHON, "-m", "chitram_falcon", "sweep", "--older-than", "0"],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=follower,
        )
        os.close(follower)
        out, _ = proc.communicate(timeout=120)
        chunks = []
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(leader)
    assert proc.returncode == 0
    screen = b"".join(chunks).decode(errors="replace")
    assert "\r" in screen
    assert "sweep remove [" + "#" * 30 + "] 4/4 100%" in screen, screen
    assert "INFO chitram.progress" not in screen  # a bar, not log lines
    assert b"orphans queued: 4" in out
