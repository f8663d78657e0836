"""The built wheel is complete: installed alone in a fresh venv, the SDK, the app and the command
work. A file left out of the wheel (a migration, a template, ``py.typed``) fails here."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hostkit import ROOT, clean_env

PACKAGES = ("chitram_core", "chitram_falcon")
INSTALL_TIMEOUT = 600.0  # a ceiling for a slow package index; not a timing assertion


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def package_files() -> set[str]:
    """Every file of the two packages in the source tree (git's list when there is one)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--", *PACKAGES],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [
            str(path.relative_to(ROOT))
            for package in PACKAGES
            for path in (ROOT / package).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        ]
    return {name for name in listed if (ROOT / name).is_file()}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run([*build, "-w", str(dist), str(ROOT)], cwd=dist)
    (built,) = dist.glob("chitram-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_packages(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = sorted(package_files() - names)
    assert not missing, f"left out of the wheel: {missing}"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names), sorted(names)


@pytest.mark.slow
def test_the_wheel_works_installed_alone_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path)
    python = venv / "bin" / "python"
    # The dependencies come from the package index pip is configured with (core + server).
    run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", f"{wheel}[server]"],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    smoke = run(
        [str(python), str(ROOT / "tests" / "host" / "wheel_smoke.py"), str(tmp_path / "data")],
        cwd=tmp_path,  # not the source tree: nothing may be imported from there
        env=clean_env(),
    )
    assert smoke.strip().endswith("SMOKE OK"), smoke
    usage = run([str(venv / "bin" / "chitram"), "--help"], cwd=tmp_path, env=clean_env())
    assert "serve" in usage and "sweep" in usage
    # The core and the server extra need no HTTP client (httpx is in the supabase extra).
    found = run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('httpx') is None)"],
        cwd=tmp_path,
        env=clean_env(),
    )
    assert found.strip() == "True"
