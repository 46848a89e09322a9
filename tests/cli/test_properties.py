"""Properties over arbitrary input, with hypothesis: whatever text is given where a revision or a
database URL goes, the tool answers with one of its documented exit codes and a message, never
a traceback or an internal error, never prints a password, and never changes the database.

Every test runs the CLI in-process against a real database of its own (a tiny project from
tests/harness/projects.py, bootstrapped) and checks, once hypothesis is done, that the database is
exactly as before. A URL the tool would connect to is only ever this test's own database or a
closed port on the loopback address: an example that would reach anything else is discarded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url
from typer.testing import Result

from tests.conftest import invoke
from tests.harness import dbstate
from tests.harness.audit import audit_rows
from tests.harness.projects import Rev, write_project

# Exit codes the README documents for up, down, bootstrap and history (8, another run holding the
# lock, cannot happen here: nothing else runs on these databases).
DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 9}

BASE = "aaaa00000001"
REV_1 = "abcd11110001"
REV_2 = "abcd22220002"
REV_3 = "cdef33330003"

SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    "database": None,  # no .hypothesis folder: a failure is replayed from the seed below
}

# Words the tool's graph understands, and near misses, mixed into the arbitrary text.
REVISION_WORDS = [
    "heads",
    "head",
    "base",
    "+1",
    "-1",
    "+0",
    "-0",
    "+99",
    "-99",
    "+",
    "-",
    "head+1",
    "heads-1",
    "base+1",
    "head-1",
    "@",
    "@+1",
    "heads@head",
    "abcd@+1",
    "abcd",
    "abc",
    "abcd1111",
    REV_1,
    REV_2,
    REV_3,
    BASE,
    REV_1.upper(),
    f"{BASE}:{REV_2}",
    f"{REV_1}:{REV_3}",
    f"{REV_3}:{REV_1}",
    ":",
    "a:b:c",
    f":{REV_2}",
    f"{REV_2}:",
    "base:heads",
    "%(here)s",
    "%",
    "--help",
    "--yes",
    "",
    " ",
]
revision_text = st.one_of(
    st.text(),
    st.sampled_from(REVISION_WORDS),
    st.builds(
        lambda a, sep, b: a + sep + b,
        st.sampled_from(REVISION_WORDS),
        st.sampled_from(["", ":", "@", "+", "-", "/", "%", " ", "\x00", "\n"]),
        st.one_of(st.sampled_from(REVISION_WORDS), st.text(max_size=5)),
    ),
    st.text(alphabet="abcdef0123456789+-@:%/ .heasdb", max_size=30),
    st.text(min_size=300, max_size=3000),
)


def chain_project(folder: Path) -> str:
    """BASE, then REV_1, REV_2 and REV_3, each creating a table its downgrade drops."""
    revisions = [Rev(BASE, ())]
    parent = BASE
    for number, revision in enumerate((REV_1, REV_2, REV_3), start=1):
        revisions.append(
            Rev(
                revision,
                (parent,),
                upgrade=f'op.execute("CREATE TABLE r{number} (id integer)")',
                downgrade=f'op.execute("DROP TABLE r{number}")',
            )
        )
        parent = revision
    return str(write_project(folder, revisions))


def ready_database(ini: str, url: str, *, at: str | None = REV_1) -> None:
    """Bootstrap, then bring it to ``at`` (the middle of the chain: up and down both have work)."""
    result = invoke("-c", ini, "--url", url, "bootstrap", "--yes")
    assert result.exit_code == 0, result.output
    if at is not None:
        result = invoke("-c", ini, "--url", url, "up", at, "--yes", "--no-rehearsal")
        assert result.exit_code == 0, result.output


def assert_clean(result: Result, args: tuple[str, ...]) -> None:
    """A documented exit code, and a message rather than a crash."""
    shown = f"args {args!r}\nexit {result.exit_code}\n{result.output}"
    assert result.exit_code in DOCUMENTED, shown
    assert "Traceback" not in result.output, shown
    assert "Internal error" not in result.output, shown
    # An exception that escaped the CLI's own handling (CliRunner records it instead of raising).
    assert result.exception is None or isinstance(result.exception, SystemExit), f"{shown}\n{result.exception!r}"


def unchanged(url: str) -> Callable[[], None]:
    """Snapshot now; the returned check says the database (and the server's scratch databases) are as they were."""
    before = dbstate.snapshot(url)
    runs_before = audit_rows(url, "id, command, outcome")

    def check() -> None:
        assert dbstate.snapshot(url) == before
        assert audit_rows(url, "id, command, outcome") == runs_before
        assert dbstate.scratch_databases_of(url) == []

    return check



# -- revisions -----------------------------------------------------------------------------


@pytest.mark.long_trials
def test_any_up_target_in_a_dry_run(tmp_path: Path, database_url: str) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    check = unchanged(database_url)

    @seed(1001)
    @settings(max_examples=120, **SETTINGS)
    @given(target=revision_text)
    def up_dry_run(target: str) -> None:
        args = ("-c", ini, "--url", database_url, "up", target, "--dry-run")
        assert_clean(invoke(*args), args)

    up_dry_run()
    check()


@pytest.mark.long_trials
def test_any_down_target_in_a_dry_run(tmp_path: Path, database_url: str) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url, at=REV_2)
    check = unchanged(database_url)

    @seed(1002)
    @settings(max_examples=120, **SETTINGS)
    @given(target=revision_text)
    def down_dry_run(target: str) -> None:
        args = ("-c", ini, "--url", database_url, "down", "--to", target, "--dry-run")
        assert_clean(invoke(*args), args)

    down_dry_run()
    check()


@pytest.mark.long_trials
def test_any_bootstrap_baseline_in_a_dry_run(
    tmp_path: Path, database_url: str, make_database: Callable[[str], str]
) -> None:
    """On a bootstrapped database (a known baseline is refused there: exit 6) and on an empty one
    (a known baseline is rehearsed in a rolled-back transaction: exit 0)."""
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    empty_url = make_database("empty")
    check = unchanged(database_url)
    check_empty = unchanged(empty_url)

    @seed(1003)
    @settings(max_examples=100, **SETTINGS)
    @given(baseline=revision_text)
    def bootstrap_dry_run(baseline: str) -> None:
        for url in (database_url, empty_url):
            args = ("-c", ini, "--url", url, "bootstrap", "--baseline", baseline, "--dry-run")
            assert_clean(invoke(*args), args)

    bootstrap_dry_run()
    check()
    check_empty()
    assert dbstate.snapshot(empty_url)["relations"] == []


@pytest.mark.long_trials
def test_any_range_for_offline_sql(tmp_path: Path, database_url: str) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    check = unchanged(database_url)

    @seed(1004)
    @settings(max_examples=200, **SETTINGS)
    @given(target=revision_text)
    def up_sql(target: str) -> None:
        args = ("-c", ini, "--url", database_url, "up", "--sql", target)
        assert_clean(invoke(*args), args)

    up_sql()
    check()


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(("up", "", "--dry-run"), id="up-empty"),
        pytest.param(("up", "abcd11110001@", "--dry-run"), id="up-rev-at"),
        pytest.param(("up", "head+1@abcd", "--dry-run"), id="up-relative-at"),
        pytest.param(("down", "--to", "", "--dry-run"), id="down-empty"),
        pytest.param(("down", "--to", "@", "--dry-run"), id="down-at"),
        pytest.param(("bootstrap", "--baseline", "@", "--dry-run"), id="bootstrap-at"),
        pytest.param(("up", "--sql", "aaaa00000001:@"), id="sql-at"),
        # The same commands with a well-formed revision that does not exist.
        pytest.param(("up", "ffff0000", "--dry-run"), id="up-unknown"),
        pytest.param(("down", "--to", "ffff0000", "--dry-run"), id="down-unknown"),
        pytest.param(("bootstrap", "--baseline", "ffff0000", "--dry-run"), id="bootstrap-unknown"),
        pytest.param(("up", "--sql", "aaaa00000001:ffff0000"), id="sql-unknown"),
    ],
)
def test_malformed_revision_identifiers_are_revision_errors(
    tmp_path: Path, database_url: str, command: tuple[str, ...]
) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    check = unchanged(database_url)

    result = invoke("-c", ini, "--url", database_url, *command)

    assert result.exit_code == 5, result.output  # an unknown or ambiguous revision
    assert "Internal error" not in result.output and "Traceback" not in result.output, result.output
    check()


# -- database URLs -------------------------------------------------------------------------

CLOSED_PORT = 1  # nothing listens on 127.0.0.1:1: the connection is refused at once
LOOPBACK = ("127.0.0.1", "localhost")
MARK_START, MARK_END = "Kp7vQz", "Xw3mJq"  # the ends of every secret: distinctive, never in other output


def where_it_connects(raw: str) -> tuple[str | None, int | None, str | None, dict[str, Any]] | None:
    """(host, port, database, query) the tool would connect to with --url ``raw``, or None when it
    refuses the URL first. Mirrors hindsight_migrate.config.normalize_url."""
    try:
        url = make_url(raw.strip())
    except Exception:
        return None
    backend, _, _driver = url.drivername.partition("+")
    # Any PostgreSQL driver is accepted (the tool connects with psycopg 3 to the same database).
    if backend not in ("postgresql", "postgres") or not url.database:
        return None
    return url.host, url.port, url.database, dict(url.query)


def reaches_only_this_test(raw: str, own: Any) -> bool:
    """Whether --url ``raw`` can only reach this test's own database or a closed loopback port."""
    if not raw.strip():
        return False  # no URL at all: the tool would start an embedded server of its own
    target = where_it_connects(raw)
    if target is None:
        return True
    host, port, database, query = target
    if host in LOOPBACK and port == CLOSED_PORT and not query:
        return True
    if (host, port, database) != (own.host, own.port, own.database):
        return False
    # This test's database, with its own query (the embedded server's socket) and harmless options.
    added = {key for key, value in query.items() if own.query.get(key) != value}
    return all(query.get(key) == value for key, value in own.query.items()) and added <= HARMLESS_OPTIONS


# libpq options that change how, not where, the tool connects; and one that libpq does not know.
HARMLESS_OPTIONS = {
    "application_name",
    "client_encoding",
    "connect_timeout",
    "keepalives",
    "options",
    "sslmode",
    "target_session_attrs",
    "no_such_option",
}


def leaked(output: str) -> bool:
    """Whether either end of a secret shows in ``output``, across Rich's wrapping and panel borders."""
    squeezed = re.sub(r"[\s│╭╮╰╯─┃┏┓┗┛━]", "", output)
    return MARK_START in squeezed or MARK_END in squeezed


@st.composite
def urls_with_a_secret(draw: st.DrawFn, own: Any) -> str:
    """scheme://user:SECRET@host/db with an arbitrary secret: towards this test's database (whose
    trust authentication ignores the password), a closed loopback port, or a URL the tool refuses."""
    # Anything at all in the secret (an '@', a line break, a byte that is not UTF-8 as Python's argv
    # carries it), and anything but the separators in the user (spaces too).
    secret = MARK_START + draw(st.text(alphabet=st.characters(exclude_characters=""), max_size=40)) + MARK_END
    user = draw(st.one_of(st.just("postgres"), st.text(alphabet=st.characters(exclude_characters=":/@"), max_size=12)))
    scheme = draw(
        st.sampled_from(["postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "mysql", "http"])
    )
    own_host = (own.host or "") + (f":{own.port}" if own.port else "")
    own_query = "?" + "&".join(f"{k}={v}" for k, v in own.query.items()) if own.query else ""
    where = draw(
        st.sampled_from(
            [
                f"{own_host}/{own.database}{own_query}",  # this test's database
                f"127.0.0.1:{CLOSED_PORT}/{own.database}",  # nothing listens there
                f"localhost:{CLOSED_PORT}/nowhere",
                f"127.0.0.1:{CLOSED_PORT}",  # no database: refused before connecting
                "127.0.0.1:notaport/db",  # refused before connecting
            ]
        )
    )
    return f"{scheme}://{user}:{secret}@{where}"


@pytest.mark.long_trials
def test_any_url_for_history(tmp_path: Path, database_url: str) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    own = make_url(database_url)
    check = unchanged(database_url)
    outcomes: dict[int, int] = {}

    @seed(1005)
    @settings(max_examples=250, **SETTINGS)
    @given(
        url=st.one_of(
            st.text(),
            st.builds(lambda head, tail: head + tail, st.sampled_from(["postgresql://", "postgres://", ""]), st.text()),
            urls_with_a_secret(own),
            st.builds(
                lambda key, value: f"{database_url}{'&' if '?' in database_url else '?'}{key}={value}",
                st.sampled_from(sorted(HARMLESS_OPTIONS)),
                st.text(max_size=20),
            ),
        ),
        as_json=st.booleans(),
    )
    def history(url: str, as_json: bool) -> None:
        if not reaches_only_this_test(url, own):
            return
        args = ("-c", ini, "--url", url, "history", *(["--json"] if as_json else []))
        result = invoke(*args)
        assert_clean(result, args)
        outcomes[result.exit_code] = outcomes.get(result.exit_code, 0) + 1

    history()
    check()
    print(f"history --url: exit codes {outcomes}")


# Commands that print the database they use, in plans, refusals and errors (no rehearsal: a
# scratch copy per example would not fit the budget; the rehearsal's words name no password).
PASSWORD_COMMANDS = [
    "history",
    "history --json",
    "up --dry-run --no-rehearsal",
    "down --dry-run --no-rehearsal",
    "bootstrap --dry-run",
]


@pytest.mark.long_trials
def test_a_password_in_any_url_is_never_shown(tmp_path: Path, database_url: str) -> None:
    ini = chain_project(tmp_path / "p")
    ready_database(ini, database_url)
    own = make_url(database_url)
    check = unchanged(database_url)
    outcomes: dict[int, int] = {}

    @seed(1006)
    @settings(max_examples=250, **SETTINGS)
    @given(url=urls_with_a_secret(own), command=st.sampled_from(PASSWORD_COMMANDS))
    def password_stays_hidden(url: str, command: str) -> None:
        if not reaches_only_this_test(url, own):
            return
        args = ("-c", ini, "--url", url, *command.split())
        result = invoke(*args)
        assert_clean(result, args)
        assert not leaked(result.output), f"the password was shown: {args!r}\n{result.output}"
        outcomes[result.exit_code] = outcomes.get(result.exit_code, 0) + 1

    password_stays_hidden()
    check()
    print(f"a password in --url: exit codes {outcomes}")


SECRET = MARK_START + MARK_END


@pytest.mark.parametrize(
    ("url", "shown_if_leaked"),
    [
        # Accepted and announced ("Database: postgresql+psycopg://..."), the user with a space.
        pytest.param(f"postgresql://my user:{SECRET}@127.0.0.1:1/db", SECRET, id="user-space"),
        pytest.param("postgresql://my user:ab@127.0.0.1:1/db", ":ab@", id="user-space-short"),
        pytest.param("postgresql://my user:pa:ss@127.0.0.1:1/db", "pa%3Ass", id="user-space-colon"),
        pytest.param("postgresql://my user:päss@127.0.0.1:1/db", "p%C3%A4ss", id="user-space-umlaut"),
        # Refused (no database; not PostgreSQL), the URL quoted back.
        pytest.param(f"postgresql://app :{SECRET}@127.0.0.1:1", SECRET, id="user-space-no-db"),
        pytest.param(f"mysql://my user:{SECRET}@localhost/x", SECRET, id="user-space-mysql"),
        pytest.param(f"postgresql://app:{MARK_START}\n{MARK_END}@127.0.0.1:1", MARK_START, id="line-break"),
        pytest.param(f"mysql://app:{MARK_START}@ {MARK_END}@localhost/x", MARK_END, id="at-and-space"),
        # Bytes that are not UTF-8, as Python hands them over from the command line.
        pytest.param(f"postgresql://app:{MARK_START}\udcff{MARK_END}@127.0.0.1:1/db", MARK_START, id="bad-byte"),
        pytest.param(f"postgresql://app:{SECRET}@127.0.0.1:1/d\udcffb", SECRET, id="bad-byte-database"),
        # Plain ones.
        pytest.param(f"postgresql://my_user:{SECRET}@127.0.0.1:1/db", SECRET, id="plain"),
        pytest.param("postgresql://my_user:ab@127.0.0.1:1/db", ":ab@", id="plain-short"),
        pytest.param("postgresql://my_user:päss@127.0.0.1:1/db", "p%C3%A4ss", id="plain-umlaut"),
        pytest.param(f"mysql://my_user:{SECRET}@localhost/x", SECRET, id="plain-mysql"),
        pytest.param(f"mysql://app:{MARK_START}@{MARK_END}@localhost/x", MARK_END, id="plain-at"),
    ],
)
def test_passwords_of_odd_urls_are_masked(tmp_path: Path, url: str, shown_if_leaked: str) -> None:
    """Examples hypothesis found, all fixed since. Nothing here reaches a
    server: a closed loopback port, or a URL refused before connecting."""
    ini = chain_project(tmp_path / "p")

    result = invoke("-c", ini, "--url", url, "history")

    assert_clean(result, ("--url", url, "history"))
    squeezed = re.sub(r"[\s│╭╮╰╯─┃┏┓┗┛━]", "", result.output)
    assert shown_if_leaked not in squeezed and not leaked(result.output), result.output
