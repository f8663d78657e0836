"""``chitram users list|create|disable|enable``: user management from the command line, over the
SDK's admin surface; a mistake is one line on stderr and status 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from opskit import PYTHON, clean_env

PASSWORD = "correct horse battery"


def users(
    args: list[str], cwd: Path, env: dict[str, str], stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "chitram_falcon", "users", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_create_list_disable_enable(tmp_path: Path) -> None:
    env = clean_env()
    created = users(["create", "ada@example.com"], tmp_path, env, stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created user ") and "(ada@example.com)" in created.stdout
    user_id = created.stdout.split()[2]

    listed = users(["list"], tmp_path, env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0].split("\t")[:4] == [
        user_id,
        "ada@example.com",
        "enabled",
        "local",
    ]

    disabled = users(["disable", "ADA@example.com"], tmp_path, env)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == f"disabled user {user_id} (ada@example.com)"
    as_json = users(["list", "--json", "--state", "disabled"], tmp_path, env)
    rows = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["id"], r["is_active"], r["provider"]) for r in rows] == [(user_id, False, "local")]
    assert users(["list", "--state", "enabled"], tmp_path, env).stdout == ""

    enabled = users(["enable", user_id], tmp_path, env)
    assert enabled.returncode == 0, enabled.stderr
    assert enabled.stdout.strip() == f"enabled user {user_id} (ada@example.com)"
    assert "\tenabled\t" in users(["list"], tmp_path, env).stdout


def test_mistakes_are_one_line_and_status_2(tmp_path: Path) -> None:
    env = clean_env()
    assert users(["create", "a@example.com"], tmp_path, env, stdin=PASSWORD).returncode == 0
    for args, stdin, says in (
        (["create", "A@example.com"], PASSWORD, "already exists"),
        (["create", "b@example.com"], "short", "8"),
        (["create", "not-an-email"], PASSWORD, "email"),
        (["disable", "nobody@example.com"], "", "nobody@example.com"),
        (["enable", "no-such-id"], "", "no-such-id"),
        (["list", "--limit", "0"], "", "limit"),
    ):
        result = users(args, tmp_path, env, stdin=stdin)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert says in result.stderr, (args, result.stderr)


def test_a_database_behind_is_refused_until_upgraded(tmp_path: Path) -> None:
    env = clean_env(CHITRAM_AUTO_MIGRATE="false")
    refused = users(["list"], tmp_path, env)
    assert refused.returncode == 2 and "chitram db upgrade" in refused.stderr, refused.stderr
    upgrade = subprocess.run(
        [PYTHON, "-m", "chitram_falcon", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    assert users(["list"], tmp_path, env).returncode == 0


def test_quota_show_set_and_clear(tmp_path: Path) -> None:
    env = clean_env(CHITRAM_QUOTA_IMAGES="50")
    assert users(["create", "q@example.com"], tmp_path, env, stdin=PASSWORD).returncode == 0
    shown = users(["quota", "q@example.com"], tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "bytes: 0 of none\timages: 0 of 50"
    set_ = users(["quota", "Q@example.com", "--bytes", "1G", "--images", "1000"], tmp_path, env)
    assert set_.returncode == 0, set_.stderr
    assert set_.stdout.strip() == f"bytes: 0 of {1024**3}\timages: 0 of 1000"
    only = users(["quota", "q@example.com", "--bytes", "512MiB", "--json"], tmp_path, env)
    assert json.loads(only.stdout) == {
        "bytes": 0,
        "images": 0,
        "quota_bytes": 512 * 1024**2,
        "quota_images": 50,  # left out: the default applies again
    }
    cleared = users(["quota", "q@example.com", "--clear"], tmp_path, env)
    assert cleared.stdout.strip() == "bytes: 0 of none\timages: 0 of 50"
    for args, says in (
        (["quota", "q@example.com", "--bytes", "lots"], "--bytes"),
        (["quota", "q@example.com", "--images", "-3"], "--images"),
        (["quota", "q@example.com", "--clear", "--images", "3"], "--clear"),
        (["quota", "nobody@example.com"], "nobody@example.com"),
    ):
        result = users(args, tmp_path, env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert says in result.stderr, (args, result.stderr)
