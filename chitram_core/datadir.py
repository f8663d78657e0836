"""The data dir is private: the folder 0700, the secret and the SQLite files 0600.

The embedded defaults keep a generated JWT secret, the database and the images in one folder;
none of it is for other local users to read. The secret is made once, with ``os.link`` from a
finished temporary file, so several workers starting at once agree on one secret and never read
a half-written one.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from chitram_core.errors import ConfigurationError

log = logging.getLogger(__name__)

SECRET_FILE = "secret"
MIN_SECRET_CHARS = 32


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if missing and make it 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        try:
            path.chmod(mode & 0o700 | 0o700)
        except OSError as exc:  # not ours to change: say so and carry on
            log.warning("could not make %s private (%s)", path, exc)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 if missing; make an existing one 0600."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return path


def kept_secret(data_dir: Path) -> str:
    """The installation's JWT secret from ``<data_dir>/secret``, made on first use."""
    private_dir(data_dir)
    path = data_dir / SECRET_FILE
    if not path.exists():
        _create_secret(path)
    private_file(path)
    value = path.read_text(encoding="utf-8").strip()
    if len(value) < MIN_SECRET_CHARS:
        raise ConfigurationError(
            f"{path} holds a secret shorter than {MIN_SECRET_CHARS} characters; "
            "delete it to have a new one made, or set CHITRAM_JWT_SECRET"
        )
    return value


def _create_secret(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
            log.info("made a new JWT secret in %s", path)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)


def private_sqlite(database_url: str) -> None:
    """Make the SQLite file (and its WAL/SHM companions) 0600 before SQLite opens it, so the
    companions it creates inherit the mode."""
    if not database_url.startswith("sqlite"):
        return
    _, _, rest = database_url.partition(":///")
    location = rest.split("?", 1)[0]
    if not location or location == ":memory:" or location.startswith("file:"):
        return
    path = Path(location)
    if not path.parent.exists():
        return
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            private_file(companion)
