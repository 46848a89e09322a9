"""The PostgreSQL layer: read-only connections, SQL read with PostgreSQL's parser."""
