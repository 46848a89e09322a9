"""new and merge: autogenerate against a database at head, and the review of what it found."""
