"""The schema revision this version of appreciate works with: the newest migration it ships
(tests/test_sqlite_reads.py checks it against Alembic's scripts). A constant, so the quick read
path (`scheduler.service.sqlite_reads`) can check a store without loading Alembic."""

SCHEMA_HEAD = "0011"
