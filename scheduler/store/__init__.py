"""The customer store: tables, engines, schema migrations and the checks around them.

`models` (the tables), `db` (engines for SQLite and PostgreSQL), `schema` and `migrations`
(Alembic), `bulk` (the importer's fast inserts), `outbox` (occasions recorded as touches exactly
once, suppressed or expired with a reason, spaced by the frequency cap: where detection and
delivery meet), `queue_counts` (the queue by status), `review_values` (what a review row may
hold, checked on import and again by the notes), `opt_out_spool` (opt-outs kept on disk while
the store cannot take them), and the queries other packages share.

May import the pure core (`scheduler.occasions`, `scheduler.ltv`) and config; never notes,
the importer, detection, delivery, the service or the commands.
"""
