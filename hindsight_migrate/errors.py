"""The one exception hierarchy of hindsight-migrate, and the exit codes it maps to.

Every failure a user can cause or meet is a subclass of :class:`HindsightMigrateError`.
Core code raises them; ``cli.py`` is the one place that turns them into a message on stderr
and an exit code. Alembic, SQLAlchemy and psycopg errors are translated where they are
raised (``alembic_api.py``, ``database.py``) so nothing below the CLI leaks a traceback.

Exit codes are part of the tool's interface (scripts gate on them) and documented in the
README; change them only with a major version.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1  # a bug in hindsight-migrate: please report it (run with --debug)
    USAGE = 2  # bad command-line syntax (Click's own code, kept for consistency)
    CONFIG = 3  # alembic.ini, a settings value, a URL or a file it names is wrong or missing
    CONNECTION = 4  # the database server cannot be reached or refused the login
    REVISION = 5  # an unknown or ambiguous revision, or a broken revision graph or file
    REFUSED = 6  # the database is not in a state this command may act on
    ABORTED = 7  # the reviewer did not confirm, or no terminal was there to ask
    LOCKED = 8  # another hindsight-migrate run holds the database's migration lock
    FAILED = 9  # a statement failed while changing the database; nothing of it committed
    BEHIND = 10  # status: revisions are pending
    DIVERGED = 11  # status: the database is at a revision no file has, or an applied file is gone
    TAMPERED = 12  # status: a revision file (or V1) changed after it was applied
    CHECK_FAILED = 13  # check found problems; lint found errors
    PROJECT_CODE = 14  # the project's own code (env.py, a revision, a module they import) raised
    MACHINE = 15  # this machine: a full disk, a temporary folder or file that cannot be written safely
    INTERRUPTED = 130  # Ctrl-C; whatever was running was rolled back


@dataclass(frozen=True)
class Section:
    """A titled block of context shown under an error message (e.g. "Database said")."""

    title: str
    body: str


class HindsightMigrateError(Exception):
    """Base of every user-facing failure: a message that says what to do, plus context."""

    exit_code: ExitCode = ExitCode.INTERNAL
    title: str = "Error"

    def __init__(self, message: str, *, sections: tuple[Section, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.sections = sections

    def __str__(self) -> str:
        # The sections travel with the error: a log line or a library caller that only prints
        # str(error) still sees the failing revision and what the database said.
        blocks = [self.message]
        for section in self.sections:
            body = "\n".join(f"  {line}" for line in section.body.splitlines())
            blocks.append(f"{section.title}:\n{body}")
        return "\n\n".join(blocks)

    def with_section(self, section: Section) -> HindsightMigrateError:
        """The same error with one more section (e.g. where the database stands, added by the caller)."""
        self.sections = (*self.sections, section)
        return self


class BadArgument(HindsightMigrateError):
    """A command-line value that parses but makes no sense (an empty message, a bad range)."""

    exit_code = ExitCode.USAGE
    title = "Bad argument"


class ConfigError(HindsightMigrateError):
    """alembic.ini, a setting, a URL or a file the configuration names is wrong or missing."""

    exit_code = ExitCode.CONFIG
    title = "Configuration error"


class VersionTableUnusable(ConfigError):
    """Alembic could not create the version table env.py names (its schema does not exist, say): no revision ran."""

    title = "Version table cannot be created"


class ConnectionFailed(HindsightMigrateError):
    """The server is unreachable, the database does not exist, or the login was refused."""

    exit_code = ExitCode.CONNECTION
    title = "Cannot connect to the database"


class RevisionProblem(HindsightMigrateError):
    """An unknown or ambiguous revision id, or a revision graph Alembic cannot load."""

    exit_code = ExitCode.REVISION
    title = "Revision error"


class EnvIgnoresConnection(HindsightMigrateError):
    """env.py asks for something the tool cannot hand it safely (an engine in offline mode, a second connection)."""

    exit_code = ExitCode.CONFIG
    title = "env.py asks for a connection of its own"


class EnvAsksForAnotherDatabase(HindsightMigrateError):
    """env.py builds its engine for another database than the one the tool resolved and reviews."""

    exit_code = ExitCode.CONFIG
    title = "env.py asks for another database"


class NoTargetMetadata(HindsightMigrateError):
    """env.py gives Alembic no target_metadata, so there are no models to compare (autogenerate, check)."""

    exit_code = ExitCode.CONFIG
    title = "No models to compare"


class ProjectCodeFailed(HindsightMigrateError):
    """The project's own code raised: env.py, a revision file, or a module they import."""

    exit_code = ExitCode.PROJECT_CODE
    title = "The project's code raised an exception"


class Refused(HindsightMigrateError):
    """The database is not in a state this command may act on; nothing was changed."""

    exit_code = ExitCode.REFUSED
    title = "Refused"


class BuildAtHeadFailed(Refused):
    """A revision fails when the chain is built from an empty database up to head (what pytest-alembic's
    test_upgrade checks): the models cannot be compared with the schema at head."""

    def __init__(self, message: str, *, revision: str, said: str, sections: tuple[Section, ...] = ()) -> None:
        super().__init__(message, sections=sections)
        self.revision = revision
        self.said = said


class RehearsalImpossible(HindsightMigrateError):
    """No rehearsal could be set up (no scratch database, a failed copy); the target is untouched."""

    exit_code = ExitCode.REFUSED
    title = "Cannot rehearse"


class Aborted(HindsightMigrateError):
    """The reviewer declined, or there was no terminal to ask and no --yes; nothing changed."""

    exit_code = ExitCode.ABORTED
    title = "Aborted"


class LockBusy(HindsightMigrateError):
    """Another run holds the migration lock of this database."""

    exit_code = ExitCode.LOCKED
    title = "Database is busy"


class MachineProblem(HindsightMigrateError):
    """This machine is in the way: a full disk, a temporary folder that is not private, a file that cannot be written.
    Nothing was changed in the database."""

    exit_code = ExitCode.MACHINE
    title = "Problem on this machine"


class LockLost(HindsightMigrateError):
    """The migration lock was lost while applying (its session ended): the run stops before another revision commits."""

    exit_code = ExitCode.LOCKED
    title = "Migration lock lost"


class StatementFailed(HindsightMigrateError):
    """A statement failed while changing the database; its transaction was rolled back."""

    exit_code = ExitCode.FAILED
    title = "Failed"
