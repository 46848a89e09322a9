"""resolve_settings on the layouts `alembic init` writes: which files, which database, which refusals.

Every project here is made by the real ``alembic init -t TEMPLATE``; no database is touched.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy.engine import make_url

from hindsight_migrate.config import ToolSettings, resolve_settings
from hindsight_migrate.duration import Duration
from hindsight_migrate.errors import ConfigError
from hindsight_migrate.masking import mask_secrets
from hindsight_migrate.postgres.database import open_database

PLACEHOLDER_MASKED = "driver://user:***@localhost/dbname"
LAYOUT_WORDS = (
    "an alembic.ini with [alembic] script_location",
    "a pyproject.toml with [tool.alembic] script_location (alembic init -t pyproject)",
    "optionally beside an alembic.ini holding sqlalchemy.url and logging",
    "-n SECTION for another ini section",
)


def alembic_init(folder: Path, template: str) -> Path:
    """A project as ``alembic init -t TEMPLATE migrations`` writes it in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "alembic", "init", "-t", template, "migrations"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return folder


def set_ini_url(ini: Path, url: str) -> None:
    text = ini.read_text()
    placeholder = "sqlalchemy.url = driver://user:pass@localhost/dbname\n"
    assert placeholder in text
    ini.write_text(text.replace(placeholder, f"sqlalchemy.url = {url}\n", 1))


def placeholder_refusal(**kwargs: object) -> str:
    """Alembic's placeholder URL is refused when a command opens the database, not before: the
    commands that need none (history --offline, up --sql) still run. The refusal, masked."""
    settings = resolve_settings(**kwargs)  # type: ignore[arg-type]
    assert settings.database.url is None and not settings.database.is_embedded
    with pytest.raises(ConfigError) as caught:
        open_database(settings.database)
    return mask_secrets(caught.value.message)


def refusal(**kwargs: object) -> str:
    """The message of the ConfigError resolve_settings raises, as the CLI would show it (masked)."""
    with pytest.raises(ConfigError) as caught:
        resolve_settings(**kwargs)  # type: ignore[arg-type]
    message = caught.value.message
    assert "Is this the right file?" not in message
    return mask_secrets(message)


def assert_contains(message: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


# -- which files -------------------------------------------------------------------------


@pytest.mark.parametrize("template", ["generic", "async"])
def test_ini_templates_are_read_from_the_ini_alone(tmp_path: Path, template: str) -> None:
    project = alembic_init(tmp_path / "p", template)

    settings = resolve_settings(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert settings.ini_path == project.resolve() / "alembic.ini"
    assert settings.toml_path is None
    assert settings.project_dir == project.resolve()
    assert settings.config_path == settings.ini_path
    assert settings.ini_section == "alembic"


@pytest.mark.parametrize("template", ["pyproject", "pyproject_async"])
def test_pyproject_templates_are_read_from_both_files(tmp_path: Path, template: str) -> None:
    project = alembic_init(tmp_path / "p", template)
    assert "script_location" not in (project / "alembic.ini").read_text()

    settings = resolve_settings(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert settings.ini_path == project.resolve() / "alembic.ini"
    assert settings.toml_path == project.resolve() / "pyproject.toml"
    assert settings.project_dir == project.resolve()
    assert settings.config_path == settings.ini_path


def test_pyproject_toml_alone_uses_the_embedded_server(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    (project / "alembic.ini").unlink()
    root = project.resolve()

    settings = resolve_settings(config_path=None, url=None, cwd=project)

    assert settings.ini_path is None
    assert settings.toml_path == root / "pyproject.toml"
    assert settings.config_path == root / "pyproject.toml"
    assert settings.project_dir == root
    assert settings.database.is_embedded
    assert settings.database.embedded_data_dir == root / ".hindsight" / "pgdata"


def test_c_names_pyproject_toml_and_the_ini_beside_it_is_read_too(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    settings = resolve_settings(config_path=Path("../p/pyproject.toml"), url="postgresql://u@h/db", cwd=elsewhere)

    assert settings.toml_path == project.resolve() / "pyproject.toml"
    assert settings.ini_path == project.resolve() / "alembic.ini"
    assert settings.project_dir == project.resolve()


def test_c_names_pyproject_toml_without_an_ini_beside_it(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    (project / "alembic.ini").unlink()

    settings = resolve_settings(config_path=project / "pyproject.toml", url="postgresql://u@h/db")

    assert settings.ini_path is None
    assert settings.toml_path == project.resolve() / "pyproject.toml"
    assert settings.project_dir == project.resolve()


def test_c_names_the_ini_and_the_pyproject_toml_beside_it_is_read_too(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    (project / "alembic.ini").rename(project / "deploy.ini")

    settings = resolve_settings(config_path=project / "deploy.ini", url="postgresql://u@h/db")

    assert settings.ini_path == project.resolve() / "deploy.ini"
    assert settings.toml_path == project.resolve() / "pyproject.toml"


def test_a_pyproject_toml_without_alembic_tables_is_not_part_of_the_configuration(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "generic")
    (project / "pyproject.toml").write_text('[project]\nname = "app"\n')

    settings = resolve_settings(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert settings.ini_path == project.resolve() / "alembic.ini"
    assert settings.toml_path is None


# -- no configuration, or no script_location ----------------------------------------------


def test_an_empty_folder_names_both_layouts(tmp_path: Path) -> None:
    message = refusal(config_path=None, url=None)

    assert_contains(
        message,
        f"No Alembic configuration at {tmp_path.resolve() / 'alembic.ini'}",
        "there is no alembic.ini, nor a pyproject.toml with a [tool.alembic] table",
        "(alembic init -t pyproject)",
        "-c/--config PATH",
    )


def test_a_pyproject_toml_without_tool_alembic_and_no_ini(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "app"\n')

    message = refusal(config_path=None, url=None)

    assert_contains(
        message,
        "No Alembic configuration at",
        f"{tmp_path.resolve() / 'pyproject.toml'} has no [tool.alembic] table",
        "-c/--config PATH",
    )


def test_c_names_a_missing_pyproject_toml(tmp_path: Path) -> None:
    message = refusal(config_path=Path("sub/pyproject.toml"), url=None)

    assert_contains(
        message, f"No Alembic configuration at {tmp_path.resolve() / 'sub' / 'pyproject.toml'}", "no such file"
    )


def test_an_ini_without_script_location_names_the_layouts(tmp_path: Path) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nsqlalchemy.url =\n")

    message = refusal(config_path=None, url=None)

    assert_contains(
        message,
        f"{tmp_path.resolve() / 'alembic.ini'} has no [alembic] section with a script_location",
        "so nothing says where the migrations are",
        *LAYOUT_WORDS,
    )


def test_neither_file_has_a_script_location(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text().replace('script_location = "%(here)s/migrations"', ""))

    message = refusal(config_path=None, url=None, cwd=project)

    assert_contains(
        message,
        f"{project.resolve() / 'alembic.ini'} has no [alembic] section with a script_location",
        f"{project.resolve() / 'pyproject.toml'} has no script_location in [tool.alembic]",
        *LAYOUT_WORDS,
    )


def test_a_toml_syntax_error_names_the_file_and_the_parser_message(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "migrations\n')

    message = refusal(config_path=None, url=None)

    assert_contains(message, f"{tmp_path.resolve() / 'pyproject.toml'} is not a valid TOML file", "line 2")


def test_no_toml_parser_says_to_install_tomli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    real_import = importlib.import_module

    def without_toml(name: str, package: str | None = None) -> ModuleType:
        if name in ("tomllib", "tomli"):
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_toml)

    message = refusal(config_path=None, url=None, cwd=project)

    assert_contains(message, f"Reading {project.resolve() / 'pyproject.toml'} needs a TOML parser", "install tomli")


# -- ini sections (-n) -------------------------------------------------------------------


def test_ini_section_core_is_read_for_url_and_script_location(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "generic")
    ini = project / "alembic.ini"
    ini.write_text(
        ini.read_text()
        + "\n[core]\nscript_location = %(here)s/migrations\nsqlalchemy.url = postgresql://core@db/core\n"
    )

    settings = resolve_settings(config_path=None, url=None, cwd=project, ini_section="core")

    assert settings.ini_section == "core"
    assert settings.database.origin == "sqlalchemy.url (alembic.ini [core])"
    assert settings.database.url == "postgresql+psycopg://core@db/core"


def test_ini_section_with_only_a_url_beside_tool_alembic(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text() + "\n[core]\nsqlalchemy.url = postgresql://core@db/core\n")

    settings = resolve_settings(config_path=None, url=None, cwd=project, ini_section="core")

    assert settings.toml_path == project.resolve() / "pyproject.toml"
    assert settings.database.origin == "sqlalchemy.url (alembic.ini [core])"


def test_a_missing_ini_section_names_the_sections_there_are(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "generic")

    message = refusal(config_path=None, url="postgresql://u@h/db", cwd=project, ini_section="nope")

    assert_contains(
        message,
        f"{project.resolve() / 'alembic.ini'} has no [nope] section, which -n/--name nope asks for",
        "Its sections: [alembic], [post_write_hooks], [loggers]",
        "-n SECTION",
    )


def test_an_ini_section_with_no_ini_is_refused(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    (project / "alembic.ini").unlink()

    message = refusal(config_path=None, url="postgresql://u@h/db", cwd=project, ini_section="core")

    assert_contains(message, "-n/--name core selects a section of alembic.ini", "Leave -n out")


# -- the database URL --------------------------------------------------------------------


@pytest.mark.parametrize("template", ["generic", "async", "pyproject", "pyproject_async"])
def test_the_placeholder_url_alembic_init_writes_is_refused(tmp_path: Path, template: str) -> None:
    project = alembic_init(tmp_path / "p", template)

    message = placeholder_refusal(config_path=None, url=None, cwd=project)

    assert_contains(
        message,
        "The database URL from sqlalchemy.url (alembic.ini) is the placeholder URL `alembic init` writes",
        f"({PLACEHOLDER_MASKED})",
        "give --url postgresql://USER@HOST:PORT/DATABASE",
        "set DATABASE_URL",
        "put the real URL in sqlalchemy.url",
        "delete the sqlalchemy.url line to use the embedded PostgreSQL server",
    )
    assert ":pass@" not in message


def test_the_placeholder_from_database_url_is_refused_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = alembic_init(tmp_path / "p", "generic")
    monkeypatch.setenv("DATABASE_URL", "driver://user:pass@localhost/dbname2")

    message = placeholder_refusal(config_path=None, url=None, cwd=project)

    assert_contains(message, "from DATABASE_URL (environment) is the placeholder URL `alembic init` writes")


@pytest.mark.parametrize(
    "scheme", ["postgresql+asyncpg", "postgresql+psycopg2", "postgresql+pg8000", "postgresql+psycopg", "postgres"]
)
def test_url_flag_of_any_postgresql_driver_is_normalised_to_psycopg(tmp_path: Path, scheme: str) -> None:
    project = alembic_init(tmp_path / "p", "async")

    settings = resolve_settings(config_path=None, url=f"{scheme}://u@h/db", cwd=project)

    assert settings.database.url == "postgresql+psycopg://u@h/db"
    assert settings.database.origin == "--url"


def test_ini_url_with_asyncpg_is_normalised_to_psycopg(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject_async")
    set_ini_url(project / "alembic.ini", "postgresql+asyncpg://app:s3cret-pw@db.example:5433/appdb")

    settings = resolve_settings(config_path=None, url=None, cwd=project)

    assert settings.database.origin == "sqlalchemy.url (alembic.ini)"
    url = make_url(settings.database.url or "")
    assert (url.drivername, url.username, url.password, url.host, url.port, url.database) == (
        "postgresql+psycopg",
        "app",
        "s3cret-pw",
        "db.example",
        5433,
        "appdb",
    )
    # Connected with psycopg 3, shown as the project wrote it (the reader knows it by its asyncpg URL).
    assert settings.database.masked_url == "postgresql+asyncpg://app:***@db.example:5433/appdb"
    assert settings.database.other_driver


@pytest.mark.parametrize("key", ["sqlalchemy.url", '"sqlalchemy.url"'])  # a TOML dotted key, and a quoted one
def test_sqlalchemy_url_in_tool_alembic_is_used_without_an_ini(tmp_path: Path, key: str) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    (project / "alembic.ini").unlink()
    toml = project / "pyproject.toml"
    toml.write_text(
        toml.read_text().replace(
            "[tool.alembic]\n",
            f'[tool.alembic]\n{key} = "postgresql+asyncpg://app@/appdb?host=%(here)s/sockets"\n',
            1,
        )
    )

    settings = resolve_settings(config_path=None, url=None, cwd=project)

    assert settings.database.origin == "sqlalchemy.url (pyproject.toml [tool.alembic])"
    url = make_url(settings.database.url or "")
    assert url.drivername == "postgresql+psycopg" and url.database == "appdb"
    assert url.query["host"] == f"{project.resolve().as_posix()}/sockets"


def test_multidb_is_refused_naming_its_databases(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "multidb")

    for url in (None, "postgresql://u@h/db"):
        message = refusal(config_path=None, url=url, cwd=project)

        assert_contains(
            message,
            f"{project.resolve() / 'alembic.ini'} [alembic] lists several databases (databases = engine1, engine2)",
            "[engine1] driver://user:***@localhost/dbname;",
            "[engine2] driver://user:***@localhost/dbname2.",
            "hindsight-migrate up and down drive one database per run",
            "run this project as a fleet of its databases (hindsight-migrate fleet plan, fleet up, fleet status",
            "an ini section of its own with sqlalchemy.url and script_location, selected with -n SECTION",
        )
        assert ":pass@" not in message


# -- the tool's own settings -------------------------------------------------------------


TOOL_TABLE = """
[tool.hindsight-migrate]
bootstrap_sql = "infra/v1.sql"
baseline = "cd3fb603795c"
lock_timeout = "2s"
statement_timeout = "90s"
rehearsal_data_limit_mb = 50
lint_error_rules = ["ban-drop-table", "adding-not-nullable-field"]
lint_ignore_rules = []
refuse_noop_downgrades = true
"""


def test_tool_settings_from_pyproject_toml(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text() + TOOL_TABLE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    settings = resolve_settings(config_path=toml, url="postgresql://u@h/db", cwd=elsewhere)

    assert settings.bootstrap_sql == project.resolve() / "infra" / "v1.sql"
    assert settings.baseline == "cd3fb603795c"
    assert settings.tool == ToolSettings(
        lock_timeout=Duration.of("2s"),
        statement_timeout=Duration.of("90s"),
        rehearsal_data_limit_mb=50,
        lint_error_rules=("ban-drop-table", "adding-not-nullable-field"),
        lint_ignore_rules=(),
        refuse_noop_downgrades=True,
    )


def test_tool_settings_in_both_files_are_refused(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text() + TOOL_TABLE)
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text() + "\n[hindsight-migrate]\nbaseline = cd3fb603795c\n")

    message = refusal(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert_contains(
        message,
        f"[hindsight-migrate] of {project.resolve() / 'alembic.ini'}",
        f"[tool.hindsight-migrate] of {project.resolve() / 'pyproject.toml'}",
        "Keep the settings in one place",
    )


@pytest.mark.parametrize(
    ("word", "expected"), [("Yes", True), ("TRUE", True), ("1", True), ("no", False), ("0", False)]
)
def test_refuse_noop_downgrades_in_the_ini(tmp_path: Path, word: str, expected: bool) -> None:
    project = alembic_init(tmp_path / "p", "generic")
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text() + f"\n[hindsight-migrate]\nrefuse_noop_downgrades = {word}\n")

    settings = resolve_settings(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert settings.tool.refuse_noop_downgrades is expected
    assert settings.tool.lint_ignore_rules == ToolSettings().lint_ignore_rules


def test_a_bad_refuse_noop_downgrades_value_is_refused(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "generic")
    ini = project / "alembic.ini"
    ini.write_text(ini.read_text() + "\n[hindsight-migrate]\nrefuse_noop_downgrades = maybe\n")

    message = refusal(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert_contains(
        message,
        f"refuse_noop_downgrades = 'maybe' in [hindsight-migrate] of {project.resolve() / 'alembic.ini'}",
        "Accepted values: true, false, yes, no, 1, 0",
    )


def test_a_toml_number_for_refuse_noop_downgrades_is_refused(tmp_path: Path) -> None:
    project = alembic_init(tmp_path / "p", "pyproject")
    toml = project / "pyproject.toml"
    toml.write_text(toml.read_text() + "\n[tool.hindsight-migrate]\nrefuse_noop_downgrades = 2\n")

    message = refusal(config_path=None, url="postgresql://u@h/db", cwd=project)

    assert_contains(
        message,
        f"refuse_noop_downgrades = 2 in [tool.hindsight-migrate] of {project.resolve() / 'pyproject.toml'}",
        "Accepted values: true, false, yes, no, 1, 0",
    )
