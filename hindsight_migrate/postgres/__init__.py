"""PostgreSQL: connections, the catalog, the advisory lock, scratch databases, the embedded server, the
tool's own records, SQL read with PostgreSQL's parser, and the guard on a rehearsal's connection.

The only package with SQL text in it (see README, Development).
"""
