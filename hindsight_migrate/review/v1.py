"""V1's file as bootstrap records it: read, and its checksum compared with the one recorded, without parsing
its SQL (history and status ask whether it changed; bootstrap, which runs it, parses it)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from hindsight_migrate.errors import ConfigError

if TYPE_CHECKING:
    from hindsight_migrate.postgres.audit_records import BootstrapRecord


def read_v1_text(path: Path) -> str:
    """The file's text; a missing, unreadable or non-UTF-8 file is the user's to fix."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ConfigError(
            f"The bootstrap SQL file {path} does not exist. Fix bootstrap_sql in alembic.ini or pass --sql PATH."
        ) from err
    except OSError as err:
        raise ConfigError(f"Cannot read the bootstrap SQL file {path}: {err.strerror}.") from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"The bootstrap SQL file {path} is not UTF-8 text.") from err


def sha256_of_text(text: str) -> str:
    """SHA-256 of a text file with normalised line endings, so a checkout's CRLF is no change."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return hashlib.sha256(normalised.encode("utf-8")).hexdigest()


def sha256_of_file(path: Path) -> str:
    return sha256_of_text(path.read_text(encoding="utf-8"))


def v1_checksum(path: Path) -> str:
    """The checksum bootstrap records for the file (raises ConfigError as :func:`read_v1_text`)."""
    return sha256_of_text(read_v1_text(path))


def v1_drift(record: BootstrapRecord | None, path: Path, sha256: str) -> str | None:
    """Words for a V1 file whose content differs from what bootstrapped the database, if so."""
    if record is None or record.sql_sha256 == sha256:
        return None
    return (
        f"{path.name} has changed since this database was bootstrapped from it on "
        f"{record.bootstrapped_at:%Y-%m-%d %H:%M %Z} (recorded SHA-256 {record.sql_sha256[:12]}…, "
        f"file now {sha256[:12]}…). V1 is history: a schema change belongs in a new "
        "revision, not in an edit of V1."
    )
