"""What the live database contains, read from PostgreSQL's catalog.

The only module that queries ``pg_catalog``. Everything it returns is plain data, so the
core can compare two readings (before and after a rehearsal) without a connection.
Objects that belong to an extension (e.g. pg_trgm's functions) are reported as the
extension, not one by one, and the tool's own schema is never part of the application's
schema.

The catalog, by what is asked of it: :mod:`.objects` (the application's objects, schema snapshots, the version
table, rows), :mod:`.activity` (locks, rewrites, rows written, sizes, blockers, advisory locks, sessions),
:mod:`.identity` (which database and server, and what the whole server shares), :mod:`.roles` (what the applying
role may do). Everything is here too, as ``catalog.<name>``.
"""

from hindsight_migrate.postgres.catalog.activity import (
    ADVISORY_LOCK_HELD,
    FILENODES_SQL,
    RELATION_LOCKS_SQL,
    SHARED_CATALOG_WORDS,
    SHARED_WRITES_SQL,
    AdvisoryHolder,
    Blocker,
    TableSize,
    advisory_keys_held,
    advisory_lock_held_by,
    advisory_lock_holder,
    advisory_lock_parameters,
    backend_pid,
    blockers_of,
    current_filenodes,
    database_size,
    databases_starting_with,
    invalid_indexes,
    rows_written_in_transaction,
    sessions_in_database,
    table_sizes,
    terminate_sessions,
)
from hindsight_migrate.postgres.catalog.identity import (
    DatabaseIdentity,
    ServerObjects,
    database_identity,
    database_name_oid_version,
    server_object_changes,
    server_objects,
)
from hindsight_migrate.postgres.catalog.objects import (
    TOOL_SCHEMA,
    CatalogObject,
    column_exists,
    constraint_definition,
    content_objects,
    count_rows,
    drop_application_objects,
    is_blank,
    list_objects,
    quote_identifier,
    schema_snapshot,
    sequence_values,
    table_exists,
    version_tables,
)
from hindsight_migrate.postgres.catalog.roles import (
    RelationOwnership,
    RoleContext,
    missing_table_privileges,
    privileges_script,
    relation_ownership,
    role_context,
    schema_create_rights,
)

__all__ = [
    "ADVISORY_LOCK_HELD",
    "FILENODES_SQL",
    "RELATION_LOCKS_SQL",
    "SHARED_CATALOG_WORDS",
    "SHARED_WRITES_SQL",
    "TOOL_SCHEMA",
    "AdvisoryHolder",
    "Blocker",
    "CatalogObject",
    "DatabaseIdentity",
    "RelationOwnership",
    "RoleContext",
    "ServerObjects",
    "TableSize",
    "advisory_keys_held",
    "advisory_lock_held_by",
    "advisory_lock_holder",
    "advisory_lock_parameters",
    "backend_pid",
    "blockers_of",
    "column_exists",
    "constraint_definition",
    "content_objects",
    "count_rows",
    "current_filenodes",
    "database_identity",
    "database_name_oid_version",
    "database_size",
    "databases_starting_with",
    "drop_application_objects",
    "invalid_indexes",
    "is_blank",
    "list_objects",
    "missing_table_privileges",
    "privileges_script",
    "quote_identifier",
    "relation_ownership",
    "role_context",
    "rows_written_in_transaction",
    "schema_create_rights",
    "schema_snapshot",
    "sequence_values",
    "server_object_changes",
    "server_objects",
    "sessions_in_database",
    "table_exists",
    "table_sizes",
    "terminate_sessions",
    "version_tables",
]
