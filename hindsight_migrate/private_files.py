"""Files the tool writes outside the database: in a folder only this user can enter, and atomically.

A big plan's SQL and Squawk's input files go to :func:`private_folder`,
``$TMPDIR/hindsight-migrate-<uid>``: made with mode 0700, and refused when it is already there
but not provably this user's own (a symbolic link, another owner, open to other users). A shared
temporary folder lets any local user create a name first; a folder of a predictable name that
someone else made would let them read the project's SQL (data literals included) or plant
symbolic links in it that make the tool overwrite a file of the user's.

Every file is written by :func:`write_atomically`: to a new file of a random name beside the
destination (``O_EXCL|O_NOFOLLOW``), synced, then renamed over it. A failure leaves the old file
or none, never half of one; a symbolic link at the destination is replaced, never followed.

TMPDIR, not XDG_RUNTIME_DIR: these are files a person opens to review (the SQL of a plan, named
on screen), not a program's sockets, and XDG_RUNTIME_DIR is a small tmpfs that logging out empties.
One knob, the one every Unix tool honours, is also the one the error messages can name.

No SQLAlchemy, Rich or Alembic here: only the standard library and the tool's errors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hindsight_migrate.errors import MachineProblem

# Errors that say the disk is full (or the user's quota on it is used up), whatever the file.
_FULL_DISK = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where there are no symlink attacks of this kind
TEMPORARY_ADVICE = "Free some space there, or set TMPDIR to a folder on a disk with room."


def private_folder() -> Path:
    """Writes (creates) this user's private folder for the tool's temporary files, mode 0700; returns it.

    An existing folder is used only when it is a real folder (not a symbolic link), owned by
    this user, and closed to group and others; anything else raises :class:`MachineProblem`,
    naming the folder and what is wrong with it, before anything is written there.
    """
    try:
        parent = Path(tempfile.gettempdir())
    except OSError as err:  # no usable temporary folder at all (gettempdir tries several)
        raise MachineProblem(
            f"No temporary folder can be written on this machine ({err.strerror or err}). Nothing was changed in "
            "the database. Set TMPDIR to a folder of your own."
        ) from err
    uid = _uid()
    folder = parent / f"hindsight-migrate-{uid if uid is not None else 'user'}"
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        _refuse_unless_private(folder)
        return folder
    except OSError as err:
        raise _cannot_make(err, folder) from err
    # mkdir's mode passes through the umask: set it exactly, on the folder just made (not through a
    # link). No fchmod on Windows; anything odd here is judged just below.
    with contextlib.suppress(AttributeError, OSError):
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW)
        try:
            os.fchmod(handle, 0o700)
        finally:
            os.close(handle)
    _refuse_unless_private(folder)
    return folder


def _cannot_make(err: OSError, folder: Path) -> MachineProblem:
    if is_full_disk(err):
        return MachineProblem(
            f"The disk holding {folder.parent} is full (or your quota there is used up), so the folder for "
            f"temporary files {folder} could not be made. Nothing was changed in the database. {TEMPORARY_ADVICE}"
        )
    return MachineProblem(
        f"The folder for temporary files {folder} could not be made: {err.strerror or err}. Nothing was changed "
        "in the database. Set TMPDIR to a folder of your own."
    )


def _uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _refuse_unless_private(folder: Path) -> None:
    """Raise :class:`MachineProblem` unless ``folder`` is a real folder of this user's, closed to everyone else."""
    try:
        facts = os.lstat(folder)  # lstat: a symbolic link is judged as the link, not as where it points
    except OSError as err:
        raise _cannot_make(err, folder) from err
    uid = _uid()
    elsewhere = "Or set TMPDIR to a folder of your own."
    planted = "if you did not make it, another user may have planted it: tell an administrator."
    if stat.S_ISLNK(facts.st_mode):
        try:
            problem = f"it is a symbolic link (to {os.readlink(folder)})"
        except OSError:
            problem = "it is a symbolic link"
        fix = f"Remove the link (rm {folder}); {planted}"
    elif not stat.S_ISDIR(facts.st_mode):
        problem = "it is not a folder"
        fix = f"Remove it (rm {folder}); {planted}"
    elif uid is not None and facts.st_uid != uid:
        problem = f"it belongs to another user ({_user_name(facts.st_uid)}), who can read and replace what is put in it"
        fix = "Ask an administrator to remove it (another user may have made it to read your files)."
    elif uid is not None and stat.S_IMODE(facts.st_mode) & 0o077:
        problem = f"other users can read or enter it (mode {stat.S_IMODE(facts.st_mode):04o}, 0700 expected)"
        fix = f"If you made it, close it (chmod 700 {folder}); if not, remove it (rm -r {folder})."
    else:
        return
    raise MachineProblem(
        f"The temporary folder {folder} is not private: {problem}. hindsight-migrate keeps the SQL of plans there "
        "(it may hold data), so it will not use it. Nothing was written there and nothing was changed in the "
        f"database. {fix} {elsewhere}"
    )


def _user_name(uid: int) -> str:
    try:
        import pwd  # lazy: POSIX only; elsewhere the uid alone is shown

        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except (ImportError, KeyError):
        return f"uid {uid}"


def write_private(name: str, text: str, *, what: str, advice: str = TEMPORARY_ADVICE) -> Path:
    """Writes the file ``name`` in :func:`private_folder`, mode 0600, atomically; returns its path.

    ``what`` names the file in an error ("the plan's SQL"), ``advice`` says what to do about a
    full disk: every failure is a :class:`MachineProblem`.
    """
    folder = private_folder()
    path = folder / name
    try:
        write_atomically(path, text, mode=0o600)
    except OSError as err:
        raise cannot_write(err, path, what=what, advice=advice) from err
    return path


@contextlib.contextmanager
def private_temporary_folder(prefix: str, *, what: str) -> Iterator[Path]:
    """Writes a new folder (mode 0700, a random name) in :func:`private_folder`, removed with what it holds on exit.

    A failure to make it is a :class:`MachineProblem`; what the body raises passes unchanged.
    """
    parent = private_folder()
    try:
        holder = tempfile.TemporaryDirectory(prefix=prefix, dir=parent, ignore_cleanup_errors=True)
    except OSError as err:
        raise cannot_write(err, parent, what=what, advice=TEMPORARY_ADVICE) from err
    with holder as folder:
        yield Path(folder)


def write_atomically(path: Path, text: str, *, mode: int) -> None:
    """Writes ``path``: ``text`` as UTF-8, with exactly ``mode``, replacing whatever was there in one rename.

    The new content goes to a file of a random name in the same folder, created with
    ``O_EXCL|O_NOFOLLOW`` (never an existing file, never through a link), synced, then renamed
    over ``path``: a reader, a crash or a full disk sees the old file or the new one, never half
    of one, and a symbolic link at ``path`` is replaced by the file, its target untouched. The
    temporary file never outlives a failure. Raises the OSError as it came (callers word it:
    :func:`cannot_write`).
    """
    folder = path.parent
    data = text.encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # Hidden, and short enough for NAME_MAX (255) whatever the destination's name.
        temporary = folder / f".{path.name[:200]}.{secrets.token_hex(6)}.tmp"
        try:
            handle = os.open(temporary, flags, 0o600)
        except FileExistsError:  # a name someone else (or another run) holds: draw again
            continue
        break
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary name", str(folder))
    try:
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(handle, mode)  # exactly `mode`, whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view) :]
            os.fsync(handle)
        finally:
            os.close(handle)  # some file systems (NFS) report a full disk only here
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Best effort: the rename itself survives a power cut (POSIX: fsync the folder)."""
    with contextlib.suppress(OSError, AttributeError):
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def write_stream_in_place(path: Path, text: str) -> bool:
    """Writes ``text`` to ``path`` when it is a pipe or a device (``/dev/stdout``, ``>(…)``); False for anything else.

    Such a destination cannot be replaced by a rename (renaming over ``/dev/null`` would put a
    file in its place), and holds no old content that half a write could spoil. It is opened
    without ``O_CREAT``, so nothing is created; a symbolic link to it (``/dev/stdout``,
    ``/dev/fd/63``) is followed. A pipe nobody reads fails at once (ENXIO) instead of waiting.
    Raises OSError as it came.
    """
    try:
        if not _is_stream(os.stat(path).st_mode):
            return False
    except OSError:  # nothing there, a dangling or looping link: a file is written in its place
        return False
    handle = os.open(path, os.O_WRONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not _is_stream(os.fstat(handle).st_mode):
            return False  # it changed since it was looked at: write it as a file, atomically
        os.set_blocking(handle, True)
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(handle, view) :]
    finally:
        os.close(handle)
    return True


def _is_stream(mode: int) -> bool:
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def is_full_disk(err: OSError) -> bool:
    return err.errno in _FULL_DISK


def cannot_write(err: OSError, path: Path, *, what: str, advice: str) -> MachineProblem:
    """The :class:`MachineProblem` for ``err`` raised while writing ``what`` at ``path``.

    ``advice`` is what to do about a full disk ("set TMPDIR …", "save the plan elsewhere …").
    """
    if is_full_disk(err):
        return MachineProblem(
            f"The disk holding {path.parent} is full (or your quota there is used up), so {what} could not be "
            f"written to {path}; nothing was left half-written. Nothing was changed in the database. {advice}"
        )
    return MachineProblem(
        f"Cannot write {what} to {path}: {err.strerror or err}. Nothing was changed in the database. "
        "Check that folder, or set TMPDIR to a folder of your own."
    )
