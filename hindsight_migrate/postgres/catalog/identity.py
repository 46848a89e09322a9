"""Which database and server a connection reached, and what the whole server shares (roles, databases, settings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:

    from sqlalchemy.engine import Connection


# -- the server and the applying role: scratch databases, --rehearse-on, privileges ------


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a connection reached, whatever its URL said (host or socket, user, options)."""

    system_identifier: int | None  # pg_control_system(): the cluster, since initdb (None: not readable)
    server_started: str  # pg_postmaster_start_time(): tells a clone of the cluster from the cluster
    oid: int
    name: str

    def same_as(self, other: DatabaseIdentity) -> bool:
        # A physical copy (a restored base backup, a promoted standby) keeps the cluster's system
        # identifier and its database oids; it is still another server, started at another time.
        cluster = (
            self.system_identifier == other.system_identifier
            if self.system_identifier is not None and other.system_identifier is not None
            else True
        )
        return cluster and (self.server_started, self.oid, self.name) == (other.server_started, other.oid, other.name)


def database_identity(connection: Connection) -> DatabaseIdentity:
    """Read-only: the cluster, server start and database oid of the database ``connection`` is in."""
    readable = connection.execute(text("SELECT has_function_privilege('pg_control_system()', 'EXECUTE')")).scalar()
    system = (
        connection.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar() if readable else None
    )
    started, oid, name = connection.execute(
        text(
            "SELECT pg_postmaster_start_time()::text, d.oid::bigint, d.datname FROM pg_database d "
            "WHERE d.datname = current_database()"
        )
    ).one()
    return DatabaseIdentity(int(system) if system is not None else None, str(started), int(oid), str(name))


def database_name_oid_version(connection: Connection) -> tuple[str, int, str]:
    """Read-only: the current database's name and oid, and the server's version (a plan file records them)."""
    name, oid, version = connection.execute(
        text(
            "SELECT current_database(), d.oid::bigint, current_setting('server_version') "
            "FROM pg_database d WHERE d.datname = current_database()"
        )
    ).one()
    return str(name), int(oid), str(version)


# -- what the whole server shares -----------------------------------------------------------
#
# Roles, memberships, settings, databases, tablespaces and parameter privileges, each as a name
# and the facts that say what it is, read from the views any role may read (pg_roles hides
# passwords). Scratch databases (of any run) are left out: they come and go by design; so is a database
# another session is dropping (PostgreSQL marks it invalid, connection limit -2, while it goes).
_SERVER_OBJECTS_SQL = r"""
SELECT 'role', r.rolname, concat_ws(' ', CASE WHEN r.rolsuper THEN 'superuser' END,
       CASE WHEN r.rolcreaterole THEN 'createrole' END, CASE WHEN r.rolcreatedb THEN 'createdb' END,
       CASE WHEN r.rolcanlogin THEN 'login' END, CASE WHEN r.rolreplication THEN 'replication' END,
       CASE WHEN r.rolbypassrls THEN 'bypassrls' END, CASE WHEN NOT r.rolinherit THEN 'noinherit' END,
       'connection limit ' || r.rolconnlimit, 'valid until ' || r.rolvaliduntil,
       'comment ' || shobj_description(r.oid, 'pg_authid'))
  FROM pg_roles r
UNION ALL
SELECT 'membership', m.rolname || ' in ' || g.rolname, CASE WHEN a.admin_option THEN 'with admin option' END
  FROM pg_auth_members a JOIN pg_roles m ON m.oid = a.member JOIN pg_roles g ON g.oid = a.roleid
UNION ALL
SELECT 'settings', coalesce('role ' || r.rolname, 'every role') || ' in ' || coalesce('database ' || d.datname,
       'every database'), array_to_string(s.setconfig, ', ')
  FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
UNION ALL
SELECT 'database', d.datname, concat_ws(' ', 'owner ' || pg_get_userbyid(d.datdba), 'privileges ' || d.datacl::text,
       'connection limit ' || d.datconnlimit, CASE WHEN NOT d.datallowconn THEN 'no connections' END,
       CASE WHEN d.datistemplate THEN 'template' END, 'comment ' || shobj_description(d.oid, 'pg_database'))
  FROM pg_database d WHERE NOT starts_with(d.datname, 'hindsight_rehearsal_') AND d.datconnlimit <> -2
UNION ALL
SELECT 'tablespace', t.spcname, concat_ws(' ', 'owner ' || pg_get_userbyid(t.spcowner),
       'privileges ' || t.spcacl::text, 'options ' || t.spcoptions::text,
       'comment ' || shobj_description(t.oid, 'pg_tablespace'))
  FROM pg_tablespace t
"""
# PostgreSQL 15 added privileges on parameters (GRANT SET ON PARAMETER).
_PARAMETER_PRIVILEGES_SQL = "SELECT 'parameter privileges', parname, paracl::text FROM pg_parameter_acl"


@dataclass(frozen=True)
class ServerObjects:
    """What the whole server shares, as (kind, name) -> the facts that say what it is."""

    objects: dict[tuple[str, str], str]


def server_objects(connection: Connection) -> ServerObjects:
    """Read-only: roles, memberships, settings, databases, tablespaces and parameter privileges of the server."""
    rows = list(connection.exec_driver_sql(_SERVER_OBJECTS_SQL))
    if connection.exec_driver_sql("SELECT to_regclass('pg_catalog.pg_parameter_acl') IS NOT NULL").scalar():
        rows += list(connection.exec_driver_sql(_PARAMETER_PRIVILEGES_SQL))
    return ServerObjects({(str(kind), str(name)): str(facts or "") for kind, name, facts in rows})


def server_object_changes(before: ServerObjects, after: ServerObjects, *, new_databases: bool) -> tuple[str, ...]:
    """In words: what was added, removed or changed between two readings of :func:`server_objects`
    (with ``new_databases`` false, databases that appeared or went are not counted)."""
    changes = []
    for key in sorted(set(before.objects) | set(after.objects)):
        kind, name = key
        if not new_databases and kind == "database" and (key not in before.objects or key not in after.objects):
            continue
        if key not in before.objects:
            changes.append(f"{kind} {name} appeared")
        elif key not in after.objects:
            changes.append(f"{kind} {name} is gone")
        elif before.objects[key] != after.objects[key]:
            was, now = before.objects[key] or "nothing", after.objects[key] or "nothing"
            changes.append(f"{kind} {name} changed (was: {was}; now: {now})")
    return tuple(changes)
