"""Read SQL text with PostgreSQL's own parser (pglast): statements, transaction control, kinds.

V1 is split into statements, each with the line it starts on, so a failure names the
statement and its line, and bootstrap can refuse a file that would end its one transaction
(``COMMIT``) before any of it runs. A rehearsal on the target asks :func:`transaction_control`
about each statement before it is sent, because one that commits would make a dry run write.
Quotes, dollar quotes, nested comments and SQL-standard bodies (``BEGIN ATOMIC … END``) are
read by the server's grammar, not by a scanner of our own that could disagree with it.

pglast is imported at the top: no module of the light path (``--help``, ``history --offline``) imports this one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from pglast import ast
from pglast.enums import AlterTableType, ConstrType, ObjectType, TransactionStmtKind
from pglast.parser import ParseError, parse_sql, scan, split

_COMMENT_TOKENS = frozenset({"SQL_COMMENT", "C_COMMENT"})
_FIRST_WORD = re.compile(r"[A-Za-z_]+")
# The grammar's transaction statements (TransactionStmt) all start with one of these words.
_TRANSACTION_WORDS = frozenset(
    {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE", "PREPARE"}
)
# The transaction statements that end the transaction they run in (or, for the PREPARED
# ones, finish another one, which no rollback of ours undoes). BEGIN and START TRANSACTION
# only earn a warning inside a transaction; SAVEPOINT, RELEASE and ROLLBACK TO stay inside it.
_LEAVES = frozenset(
    {"COMMIT", "END", "ROLLBACK", "ABORT", "PREPARE TRANSACTION", "COMMIT PREPARED", "ROLLBACK PREPARED"}
)
# Text that not even PostgreSQL's lexer can read (an unterminated quote) has no statements to
# look at; every transaction word in it counts, so that nothing is let through on a guess.
_ANY_TRANSACTION_WORD = re.compile(
    r"\b(BEGIN|START\s+TRANSACTION|COMMIT\s+PREPARED|ROLLBACK\s+PREPARED|PREPARE\s+TRANSACTION|"
    r"COMMIT|END|ROLLBACK|ABORT|SAVEPOINT|RELEASE)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    text: str  # from its first token, without the comments before it and the semicolon after it
    line: int  # 1-based line of its first token

    @property
    def first_line(self) -> str:
        return self.text.strip().splitlines()[0] if self.text.strip() else ""


class ScriptSyntaxError(ValueError):
    """PostgreSQL's parser rejects the text: a syntax error, an unterminated string, a psql command."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


def split_statements(sql: str) -> list[Statement]:
    """The statements of ``sql``, in order, without empty and comment-only ones.

    The whole text is parsed first, so a file with a syntax error on its last line is refused
    before its first statement runs; :class:`ScriptSyntaxError` names the line.
    """
    try:
        spans = _spans(sql, grammar=True)
    except ParseError as err:
        raise _syntax_error(sql, err) from None
    return [Statement(text=sql[start:end], line=sql.count("\n", 0, start) + 1) for start, end in spans]


def is_transaction_control(statement: Statement) -> bool:
    """BEGIN, COMMIT, ROLLBACK, SAVEPOINT and the rest: in V1 any of them would manage bootstrap's
    one transaction, which V1 and the baseline stamp share so that a failure leaves nothing."""
    return next(_transaction_statements(statement.text), None) is not None


def transaction_control(sql: str) -> str | None:
    """The first statement in ``sql`` that would end the transaction it runs in, in words
    (``"COMMIT"``, ``"END"``, ``"PREPARE TRANSACTION"``); None when there is none.

    ``sql`` is what a driver is about to send: it may hold several statements and psycopg's
    placeholders (``%(name)s``), which PostgreSQL's grammar rejects; then PostgreSQL's lexer
    still splits it exactly (quotes, comments, dollar quotes) and the first words of each
    statement decide. A COMMIT inside a DO block or a procedure needs no check: the server
    refuses it inside a transaction block ("invalid transaction termination").
    """
    return next((words for words in _transaction_statements(sql) if words in _LEAVES), None)


def statement_kinds(sql: str, *, version_table: str) -> dict[str, int]:
    """How many statements of each kind (CREATE TABLE, ALTER TABLE, UPDATE, ...) a script runs, in order
    of first appearance; the bookkeeping of ``version_table`` (env.py's) and transaction control are not counted."""
    try:
        spans = _spans(sql, grammar=True)
    except ParseError:
        # One statement the grammar rejects (a newer server's syntax, a typo in an op.execute)
        # should not hide the others: the lexer splits, and each statement is read alone.
        try:
            spans = _spans(sql, grammar=False)
        except ParseError:
            return {}
    kinds: dict[str, int] = {}
    for start, end in spans:
        kind = _kind(sql[start:end], version_table)
        if kind:
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


# -- reading ------------------------------------------------------------------------------


def _spans(sql: str, *, grammar: bool) -> list[tuple[int, int]]:
    """Each statement's (start, end) in characters of ``sql``, from its first token; raises pglast's ParseError.

    ``grammar``: PostgreSQL's parser splits, exactly (a ``BEGIN ATOMIC … END`` body is one
    statement); otherwise its lexer splits at each semicolon outside quotes, comments and dollar
    quotes, for text the grammar rejects. Only the statements' places are built, not their
    trees: a revision's bulk INSERT of 400 kB splits in 15 ms, its tree would take 400 ms.
    """
    spans = []
    for piece in split(sql, with_parser=grammar, only_slices=True):
        start, end = int(piece.start), int(piece.stop)  # characters: pglast converts the server's byte offsets
        if sql.startswith(("--", "/*"), start):
            # The lexer's statements begin right after the semicolon before them, comments and all.
            code = [token for token in scan(sql[start:end]) if token.name not in _COMMENT_TOKENS]
            if not code:
                continue
            start += code[0].start
        spans.append((start, end))
    return spans


def _transaction_statements(sql: str) -> Iterator[str]:
    """The words of each transaction statement in ``sql``, in order (``"BEGIN"``, ``"ROLLBACK TO SAVEPOINT"``)."""
    try:
        spans = _spans(sql, grammar=True)
    except ParseError:
        try:
            spans = _spans(sql, grammar=False)
        except ParseError:
            yield from (" ".join(match.group().upper().split()) for match in _ANY_TRANSACTION_WORD.finditer(sql))
            return
    for start, end in spans:
        # Every transaction statement starts with one of these words, and no other statement
        # does but PREPARE name AS …: only these few, short statements are parsed into a tree.
        first = _FIRST_WORD.match(sql, start)
        if first and first.group().upper() in _TRANSACTION_WORDS:
            words = _transaction_words(sql[start:end])
            if words:
                yield words


def _transaction_words(text: str) -> str | None:
    """What one statement starting with a transaction word does, in words; None for PREPARE name AS …."""
    try:
        parsed = parse_sql(text)
    except ParseError:
        parsed = None
    if parsed is not None:
        node = parsed[0].stmt if len(parsed) == 1 else None
        if not isinstance(node, ast.TransactionStmt) or node.kind is None:
            return None
        said = {
            TransactionStmtKind.TRANS_STMT_BEGIN: "BEGIN",
            TransactionStmtKind.TRANS_STMT_START: "START TRANSACTION",
            TransactionStmtKind.TRANS_STMT_COMMIT: "COMMIT",
            TransactionStmtKind.TRANS_STMT_ROLLBACK: "ROLLBACK",
            TransactionStmtKind.TRANS_STMT_SAVEPOINT: "SAVEPOINT",
            TransactionStmtKind.TRANS_STMT_RELEASE: "RELEASE",
            TransactionStmtKind.TRANS_STMT_ROLLBACK_TO: "ROLLBACK TO SAVEPOINT",
            TransactionStmtKind.TRANS_STMT_PREPARE: "PREPARE TRANSACTION",
            TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
            TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED",
        }[node.kind]
        # END is COMMIT and ABORT is ROLLBACK to the grammar; name what the SQL says.
        written = _FIRST_WORD.match(text)
        return written.group().upper() if written and written.group().upper() in ("END", "ABORT") else said
    # The grammar rejects it (a placeholder for the gid, say): its first tokens decide.
    names = [token.name for token in scan(text) if token.name not in _COMMENT_TOKENS][:4]
    first, following = [*names, "", ""][:2]
    if first == "ROLLBACK":
        if following == "PREPARED":
            return "ROLLBACK PREPARED"
        return "ROLLBACK TO SAVEPOINT" if "TO" in names[1:3] else "ROLLBACK"  # ROLLBACK [WORK] TO [SAVEPOINT] s
    if first == "COMMIT":
        return "COMMIT PREPARED" if following == "PREPARED" else "COMMIT"
    if first in ("START", "PREPARE"):
        return f"{first} TRANSACTION" if following == "TRANSACTION" else None
    others = {"BEGIN_P": "BEGIN", "END_P": "END", "ABORT_P": "ABORT", "SAVEPOINT": "SAVEPOINT", "RELEASE": "RELEASE"}
    return others.get(first)


def _syntax_error(sql: str, err: ParseError) -> ScriptSyntaxError:
    message = str(err.args[0])
    index = err.args[1] if len(err.args) > 1 else None
    if index is None:  # "at end of input": the server points past the last character
        index = len(sql.rstrip())
    line = sql.count("\n", 0, index) + 1
    if sql[index : index + 1] == "\\":
        command = sql[index:].split(maxsplit=1)[0]  # \connect, \i, \set: up to the first blank
        return ScriptSyntaxError(
            f"psql meta-command {command} is not SQL (psql runs it itself; the server cannot): remove it", line
        )
    # The server quotes everything from the error to the end of the input after "at or near":
    # for an unterminated quote near the top of a long file, that is the rest of the file.
    near = re.match(r'(?s)(.*? at or near ")(.*)"$', message)
    if near and ("\n" in near.group(2) or len(near.group(2)) > 40):
        message = f'{near.group(1)}{near.group(2).splitlines()[0][:40]}…"'
    return ScriptSyntaxError(message, line)


def creates_version_table(text: str, version_table: str) -> bool:
    """Whether ``text`` is the CREATE TABLE of the version table named ``version_table`` (Alembic's own, before any
    revision runs), as PostgreSQL parses it."""
    node = _parsed_alone(text)
    return isinstance(node, ast.CreateStmt) and node.relation is not None and node.relation.relname == version_table


def _parsed_alone(text: str) -> ast.Node | None:
    try:
        parsed = parse_sql(text)
    except ParseError:
        return None
    return parsed[0].stmt if len(parsed) == 1 else None


# -- kinds --------------------------------------------------------------------------------

_KIND_SKIPPED_WORDS = frozenset(
    {"UNIQUE", "OR", "REPLACE", "CONCURRENTLY", "IF", "NOT", "EXISTS", "TEMPORARY", "TEMP", "UNLOGGED", "ONLY"}
)
_KIND_VERBS = frozenset({"CREATE", "ALTER", "DROP"})
_DATA_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "SELECT", "VALUES"})
_LARGE_STATEMENT = 10_000  # characters
_OBJECT_WORDS = {
    "MATVIEW": "MATERIALIZED VIEW",
    "FDW": "FOREIGN DATA WRAPPER",
    "FOREIGN_SERVER": "SERVER",
    "OPCLASS": "OPERATOR CLASS",
    "OPFAMILY": "OPERATOR FAMILY",
    "STATISTIC_EXT": "STATISTICS",
    "TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "TSDICTIONARY": "TEXT SEARCH DICTIONARY",
    "TSPARSER": "TEXT SEARCH PARSER",
    "TSTEMPLATE": "TEXT SEARCH TEMPLATE",
}


_COMMON_KIND = re.compile(
    r"(?P<verb>CREATE\s+(?:UNIQUE\s+)?INDEX|CREATE\s+TABLE|ALTER\s+TABLE|DROP\s+TABLE|DROP\s+INDEX|"
    r"CREATE\s+SEQUENCE|CREATE\s+EXTENSION|CREATE\s+SCHEMA|INSERT\s+INTO|DELETE\s+FROM|UPDATE)\s+"
    r"(?:CONCURRENTLY\s+)?(?:IF\s+(?:NOT\s+)?EXISTS\s+)?(?:ONLY\s+)?(?P<name>[A-Za-z_][\w$.]*|\"[^\"]+\")"
    r"(?=[\s(;]|$)",
    re.IGNORECASE,
)
_COMMON_WORDS = {"CREATE UNIQUE INDEX": "CREATE INDEX", "INSERT INTO": "INSERT", "DELETE FROM": "DELETE"}


def _kind(text: str, version_table: str) -> str | None:
    """Words for the kind of one statement; None for transaction control and the version table's rows."""
    first = _FIRST_WORD.match(text)
    verb = first.group().upper() if first else ""
    if verb in _TRANSACTION_WORDS and _transaction_words(text):
        return None
    if verb in _DATA_VERBS and len(text) > _LARGE_STATEMENT:
        # Bulk data (a revision's seed rows): its verb says what it is, and its tree would take
        # longer to build than the rest of the plan (400 ms for 400 kB). Bookkeeping rows are short.
        return verb
    common = _COMMON_KIND.match(text)
    if common is not None:
        # The statements Alembic's op.* emit nearly always: their first words are exact, and a
        # 1,000-revision plan would otherwise spend a second building their trees.
        name = common.group("name").rsplit(".", 1)[-1].strip('"')
        if name == version_table:
            return None
        words = " ".join(common.group("verb").upper().split())
        return _COMMON_WORDS.get(words, words)
    node = _parsed_alone(text)
    if node is None:  # the grammar rejects it alone: its first words, as a reader would
        return None if version_table in text else _kind_from_words(text)
    if isinstance(node, ast.TransactionStmt) or _about_version_table(node, version_table):
        return None
    fixed: dict[type[ast.Node], str] = {
        ast.CreateStmt: "CREATE TABLE",
        ast.CreateForeignTableStmt: "CREATE FOREIGN TABLE",
        ast.IndexStmt: "CREATE INDEX",
        ast.ViewStmt: "CREATE VIEW",
        ast.CreateSeqStmt: "CREATE SEQUENCE",
        ast.CreateTrigStmt: "CREATE TRIGGER",
        ast.CreateEnumStmt: "CREATE TYPE",
        ast.CompositeTypeStmt: "CREATE TYPE",
        ast.CreateRangeStmt: "CREATE TYPE",
        ast.CreateDomainStmt: "CREATE DOMAIN",
        ast.CreateSchemaStmt: "CREATE SCHEMA",
        ast.CreateExtensionStmt: "CREATE EXTENSION",
        ast.InsertStmt: "INSERT",
        ast.UpdateStmt: "UPDATE",  # also behind a WITH, which the first words would call WITH
        ast.DeleteStmt: "DELETE",
        ast.MergeStmt: "MERGE",
        ast.CommentStmt: "COMMENT ON",
    }
    if type(node) in fixed:
        return fixed[type(node)]
    if isinstance(node, ast.CreateFunctionStmt):
        return "CREATE PROCEDURE" if node.is_procedure else "CREATE FUNCTION"
    if isinstance(node, ast.CreateTableAsStmt):
        return "CREATE MATERIALIZED VIEW" if node.objtype == ObjectType.OBJECT_MATVIEW else "CREATE TABLE"
    if isinstance(node, ast.AlterTableStmt):
        return f"ALTER {_object_words(node.objtype)}"
    if isinstance(node, ast.DropStmt):
        return f"DROP {_object_words(node.removeType)}"
    return _kind_from_words(text)


def _object_words(kind: object) -> str:
    name = str(getattr(kind, "name", kind)).removeprefix("OBJECT_")
    return _OBJECT_WORDS.get(name, name.replace("_", " "))


def _about_version_table(node: ast.Node, version_table: str) -> bool:
    relation = getattr(node, "relation", None)
    if isinstance(relation, ast.RangeVar):
        return relation.relname == version_table
    if isinstance(node, ast.DropStmt):
        names = [name for name in node.objects or () if isinstance(name, tuple) and name]
        return any(isinstance(name[-1], ast.String) and name[-1].sval == version_table for name in names)
    return False


def _kind_from_words(text: str) -> str | None:
    """The statement's first keywords: ``ALTER TABLE`` for a RENAME, ``GRANT``, ``DO``, ``SET``."""
    try:
        tokens = scan(text)
    except ParseError:
        return None
    words = [text[t.start : t.end + 1].upper() for t in tokens if t.name not in _COMMENT_TOKENS][:6]
    if not words or not words[0].isalpha():
        return None
    if words[0] in _KIND_VERBS:
        rest = [word for word in words[1:] if word not in _KIND_SKIPPED_WORDS]
        return f"{words[0]} {rest[0]}" if rest and rest[0].isalpha() else words[0]
    return words[0]


# Statements that update or delete no existing row themselves (a table rewrite is not counted as updates):
# DDL, privileges, session settings, maintenance, transaction control; unless a query runs inside (CREATE
# TABLE ... AS SELECT f(), a DEFAULT that calls a function is still DDL). UPDATE, DELETE, MERGE, an INSERT
# (its trigger may write), SELECT or CALL of a function, DO: they may.
_WRITES_NO_ROWS = frozenset(
    {
        "CREATE", "ALTER", "DROP", "COMMENT", "GRANT", "REVOKE", "SET", "RESET", "LOCK_P", "ANALYZE", "VACUUM",
        "REINDEX", "CLUSTER", "TRUNCATE", "SAVEPOINT", "RELEASE", "BEGIN_P", "START", "COMMIT", "END_P",
        "ROLLBACK", "SECURITY",
    }
)
_QUERY_TOKENS = frozenset({"SELECT", "EXECUTE", "CALL", "DO"})


def may_write_rows(statement: str) -> bool:
    """Whether ``statement`` (as the driver sends it, one or several) may update or delete existing rows; read
    with PostgreSQL's lexer, so comments and quoted text decide nothing. Unreadable text: it may."""
    try:
        names = [token.name for token in scan(statement) if token.name not in _COMMENT_TOKENS]
    except ParseError:
        return True
    if not names:
        return False
    starts = [names[0]] + [names[i + 1] for i, name in enumerate(names[:-1]) if name == "ASCII_59"]
    return any(first not in _WRITES_NO_ROWS for first in starts) or not _QUERY_TOKENS.isdisjoint(names)


# -- effects beyond the database ----------------------------------------------------------
#
# A rehearsal runs on a copy of the target, or in a transaction on it that is rolled back. Some
# statements reach past the database they run in: roles, their settings and memberships,
# databases (the target's own name included), tablespaces, server parameters and their
# privileges live in catalogs the whole server shares, and a rehearsal on a copy that commits
# would change them for real. Most of them PostgreSQL runs inside a transaction, so a rollback
# undoes them (they are rehearsed in one); the rest cannot run in a transaction block (CREATE
# DATABASE, ALTER SYSTEM, a subscription that connects), or act on the machine or on other
# sessions (COPY … TO a file or PROGRAM, pg_terminate_backend()), and no rollback undoes them:
# those are not run in a rehearsal at all, and the plan says so.


@dataclass(frozen=True)
class ServerWideStatement:
    """One statement whose effect reaches past the database it runs in."""

    words: str  # what it does, for the reader: "CREATE ROLE app_reader", "ALTER SYSTEM SET work_mem"
    undoable: bool  # PostgreSQL runs it inside a transaction, so rolling that back undoes it


# Only text holding one of these words can hold such a statement: everything else is not parsed.
_MAYBE_SERVER_WIDE = re.compile(
    r"role|user|group|database|tablespace|system|subscription|parameter|owned|copy|grant|revoke|"
    r"pg_terminate_backend|pg_cancel_backend|pg_reload_conf|pg_rotate_logfile|pg_switch_wal|pg_promote|"
    r"replication_slot|replication_origin|pg_file_|lo_export|dblink|pg_signal_backend",
    re.IGNORECASE,
)
# Functions that act outside the database (other sessions, the server's files and configuration,
# replication, other servers) and that no rollback takes back.
_FUNCTIONS_BEYOND = frozenset(
    {
        "pg_terminate_backend",
        "pg_cancel_backend",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_promote",
        "pg_create_physical_replication_slot",
        "pg_create_logical_replication_slot",
        "pg_drop_replication_slot",
        "pg_copy_physical_replication_slot",
        "pg_copy_logical_replication_slot",
        "pg_replication_origin_create",
        "pg_replication_origin_drop",
        "pg_replication_origin_advance",
        "pg_file_write",
        "pg_file_rename",
        "pg_file_unlink",
        "pg_file_sync",
        "lo_export",
        "dblink_exec",
        "dblink",
        "dblink_connect",
        "dblink_send_query",
    }
)
_CALL_PREFIXES = ("pg_", "lo_export", "dblink")  # what every one of them starts with
# psycopg's placeholders, which PostgreSQL's grammar does not know: read as a parameter.
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%b|%t")


def server_wide(sql: str) -> tuple[ServerWideStatement, ...]:
    """The statements in ``sql`` (what a driver is about to send) whose effects reach past its database.

    Fast for ordinary SQL: only text holding a telling word is parsed. Text the grammar rejects
    is read statement by statement; a statement that does not parse even alone is left to the
    server (and to the rehearsal's check before each commit, which sees what was written).
    """
    if not _MAYBE_SERVER_WIDE.search(sql):
        return ()
    readable = _PLACEHOLDER.sub("$1", sql).replace("%%", "%") if "%" in sql else sql
    try:
        # The lexer splits (fast, and right for text the grammar rejects); each statement is parsed alone.
        spans = _spans(readable, grammar=False)
    except ParseError:
        return ()
    statements = []
    for start, end in spans:
        text = readable[start:end]
        first = _FIRST_WORD.match(text)
        if len(text) > _LARGE_STATEMENT and first and first.group().upper() in _DATA_VERBS:
            # Bulk rows (a seed): their tree takes long to build (400 ms for 400 kB), and only a call
            # among the values could reach past the database.
            lowered = text.lower()
            if not any(prefix in lowered for prefix in _CALL_PREFIXES):
                continue
        node = _parsed_alone(text)
        if node is not None:
            statements.append(node)
    found: list[ServerWideStatement] = []
    for node in statements:
        effect = _server_wide(node)
        if effect is not None:
            found.append(effect)
    return tuple(found)


def _server_wide(node: ast.Node) -> ServerWideStatement | None:
    shared = {ObjectType.OBJECT_DATABASE, ObjectType.OBJECT_ROLE, ObjectType.OBJECT_TABLESPACE}
    name = _names_in(node)
    # Run in a transaction: a rollback takes them back.
    undoable: dict[type[ast.Node], str] = {
        ast.CreateRoleStmt: "CREATE ROLE {}",
        ast.AlterRoleStmt: "ALTER ROLE {}",
        ast.AlterRoleSetStmt: "ALTER ROLE {} SET",
        ast.DropRoleStmt: "DROP ROLE {}",
        ast.GrantRoleStmt: "GRANT/REVOKE membership in role {}",
        ast.AlterDatabaseSetStmt: "ALTER DATABASE {} SET",
        ast.ReassignOwnedStmt: "REASSIGN OWNED BY {}",
        ast.DropOwnedStmt: "DROP OWNED BY {}",
        ast.AlterTableSpaceOptionsStmt: "ALTER TABLESPACE {}",
    }
    # Refused inside a transaction block, or acting where no rollback reaches.
    final: dict[type[ast.Node], str] = {
        ast.CreatedbStmt: "CREATE DATABASE",
        ast.DropdbStmt: "DROP DATABASE",
        ast.CreateTableSpaceStmt: "CREATE TABLESPACE",
        ast.DropTableSpaceStmt: "DROP TABLESPACE",
        ast.AlterSystemStmt: "ALTER SYSTEM",
        ast.CreateSubscriptionStmt: "CREATE SUBSCRIPTION",
        ast.AlterSubscriptionStmt: "ALTER SUBSCRIPTION",
        ast.DropSubscriptionStmt: "DROP SUBSCRIPTION",
    }
    kind = type(node)
    if kind in undoable:
        return ServerWideStatement(" ".join(undoable[kind].format(name).split()), undoable=True)
    if kind in final:
        words = final[kind]
        if isinstance(node, ast.AlterSystemStmt) and node.setstmt is not None:
            words = f"ALTER SYSTEM SET {node.setstmt.name or ''}".strip()
            name = ""
        return ServerWideStatement(f"{words} {name}".strip(), undoable=False)
    if isinstance(node, ast.AlterDatabaseStmt):
        # SET TABLESPACE moves the files and cannot run in a transaction block; the other options can.
        moves = any(getattr(option, "defname", None) == "tablespace" for option in node.options or ())
        return ServerWideStatement(f"ALTER DATABASE {name}".strip(), undoable=not moves)
    if isinstance(node, ast.RenameStmt) and node.renameType in shared:
        return ServerWideStatement(f"ALTER {_object_words(node.renameType)} … RENAME", undoable=True)
    if isinstance(node, ast.AlterOwnerStmt) and node.objectType in shared:
        return ServerWideStatement(f"ALTER {_object_words(node.objectType)} … OWNER", undoable=True)
    if isinstance(node, (ast.CommentStmt, ast.SecLabelStmt)) and node.objtype in shared:
        verb = "COMMENT ON" if isinstance(node, ast.CommentStmt) else "SECURITY LABEL ON"
        return ServerWideStatement(f"{verb} {_object_words(node.objtype)}", undoable=True)
    if isinstance(node, ast.GrantStmt) and node.objtype in (*shared, ObjectType.OBJECT_PARAMETER_ACL):
        verb = "GRANT" if node.is_grant else "REVOKE"
        what = "PARAMETER" if node.objtype == ObjectType.OBJECT_PARAMETER_ACL else _object_words(node.objtype)
        return ServerWideStatement(f"{verb} … ON {what}", undoable=True)
    if isinstance(node, ast.CopyStmt) and (node.is_program or (node.filename and not node.is_from)):
        target = "PROGRAM" if node.is_program else "a server file"
        return ServerWideStatement(f"COPY {'FROM' if node.is_from else 'TO'} {target}", undoable=False)
    called = sorted(_functions_called(node) & _FUNCTIONS_BEYOND)
    if called:
        return ServerWideStatement(f"calls {', '.join(f'{name}()' for name in called)}", undoable=False)
    return None


def _names_in(node: ast.Node) -> str:
    """The role or database a statement names, when it names one plainly (for the reader's words)."""
    for attribute in ("role", "dbname", "tablespacename", "subname"):
        value = getattr(node, attribute, None)
        if isinstance(value, str):
            return value
        rolename = getattr(value, "rolename", None)
        if isinstance(rolename, str):
            return rolename
    roles = getattr(node, "roles", None) or getattr(node, "granted_roles", None)
    names = [
        getattr(role, "rolename", None) or getattr(role, "priv_name", None) or getattr(role, "sval", None)
        for role in roles or ()
    ]
    return ", ".join(name for name in names if isinstance(name, str))


def _functions_called(node: object) -> set[str]:
    """The names of every function a statement's tree calls (its last name part, lower case)."""
    found: set[str] = set()
    pending: list[object] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.FuncCall):
            parts = [getattr(part, "sval", "") for part in current.funcname or ()]
            if parts:
                found.add(str(parts[-1]).lower())
        if isinstance(current, ast.Node):
            slots: tuple[str, ...] = getattr(current, "__slots__", ())
            pending.extend(getattr(current, slot) for slot in slots if getattr(current, slot, None))
        elif isinstance(current, (tuple, list)):
            pending.extend(current)
    return found


# -- what a statement reads or writes --------------------------------------------------------

# ALTER TABLE subcommands that read every row of the table (a scan to validate, a rewrite, an index build):
# their time grows with the table. The others change the catalog only, unless the table is rewritten anyway
# (ADD COLUMN with a volatile default), which the rehearsal sees as a new storage file.
_SCANNING_SUBCOMMANDS = frozenset(
    {
        AlterTableType.AT_SetNotNull,
        AlterTableType.AT_AlterColumnType,
        AlterTableType.AT_ValidateConstraint,
        AlterTableType.AT_SetLogged,
        AlterTableType.AT_SetUnLogged,
        AlterTableType.AT_SetAccessMethod,
        AlterTableType.AT_SetTableSpace,
        AlterTableType.AT_AddIdentity,
        AlterTableType.AT_SetExpression,
        AlterTableType.AT_DropExpression,
        AlterTableType.AT_AttachPartition,
    }
)
# Constraints whose ADD checks every row (unless NOT VALID) or builds an index.
_SCANNING_CONSTRAINTS = frozenset(
    {
        ConstrType.CONSTR_CHECK,
        ConstrType.CONSTR_PRIMARY,
        ConstrType.CONSTR_UNIQUE,
        ConstrType.CONSTR_EXCLUSION,
        ConstrType.CONSTR_FOREIGN,
        ConstrType.CONSTR_NOTNULL,
    }
)


@dataclass(frozen=True)
class StatementTables:
    """The tables one statement names, and those whose rows it reads or writes, as written (``schema.table`` or
    ``table``): a statement's time grows with the second kind only."""

    named: frozenset[str]
    processed: frozenset[str]
    altered: frozenset[str]  # the tables an ALTER TABLE changes: processed too when the rehearsal saw them rewritten
    parsed: bool = True  # False: PostgreSQL's grammar could not read it alone (nothing is known of it)
    sorts: bool = False  # it builds a B-tree index (CREATE INDEX, a primary key or unique constraint): n log n


def statement_tables(text: str) -> StatementTables:
    """What a statement the rehearsal ran names and processes, read with PostgreSQL's grammar."""
    node = _parsed_alone(text)
    if node is None:
        return StatementTables(frozenset(), frozenset(), frozenset(), parsed=False)
    named = frozenset(_dotted(range_var) for range_var in _range_vars(node))
    processed: set[str] = set()
    altered: set[str] = set()
    sorts = False
    if isinstance(node, (ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt, ast.CreateTableAsStmt, ast.SelectStmt)):
        processed |= named  # DML and queries: every table they read or write
    elif isinstance(node, ast.InsertStmt):
        if node.selectStmt is not None and not _values_only(node.selectStmt):
            processed |= named
    elif isinstance(node, (ast.IndexStmt, ast.ClusterStmt, ast.ReindexStmt)) and node.relation is not None:
        processed.add(_dotted(node.relation))
        sorts = not isinstance(node, ast.IndexStmt) or (node.accessMethod or "btree") == "btree"
    elif isinstance(node, (ast.VacuumStmt, ast.RefreshMatViewStmt)):
        processed |= named
    elif isinstance(node, ast.AlterTableStmt) and node.relation is not None:
        table = _dotted(node.relation)
        altered.add(table)
        for command in node.cmds or ():
            if not isinstance(command, ast.AlterTableCmd):
                continue
            if command.subtype in _SCANNING_SUBCOMMANDS:
                processed.add(table)
            definition = command.def_
            if (
                isinstance(definition, ast.Constraint)
                and command.subtype is AlterTableType.AT_AddConstraint
                and definition.contype in _SCANNING_CONSTRAINTS
                and not definition.skip_validation
            ):
                processed.add(table)
                sorts = sorts or definition.contype in (ConstrType.CONSTR_PRIMARY, ConstrType.CONSTR_UNIQUE)
                if definition.pktable is not None:
                    processed.add(_dotted(definition.pktable))
            if isinstance(definition, ast.ColumnDef) and command.subtype is AlterTableType.AT_AddColumn:
                constraints = definition.constraints or ()
                if any(isinstance(c, ast.Constraint) and c.contype in _SCANNING_CONSTRAINTS for c in constraints):
                    processed.add(table)
    return StatementTables(named, frozenset(processed), frozenset(altered), sorts=sorts)


def _range_vars(node: object) -> Iterator[ast.RangeVar]:
    pending: list[object] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, ast.RangeVar):
            yield current
        if isinstance(current, ast.Node):
            slots: tuple[str, ...] = getattr(current, "__slots__", ())
            pending.extend(getattr(current, slot) for slot in slots if getattr(current, slot, None))
        elif isinstance(current, (tuple, list)):
            pending.extend(current)


def _dotted(range_var: ast.RangeVar) -> str:
    return f"{range_var.schemaname}.{range_var.relname}" if range_var.schemaname else str(range_var.relname)


def _values_only(select: object) -> bool:
    return isinstance(select, ast.SelectStmt) and bool(select.valuesLists) and not select.fromClause
