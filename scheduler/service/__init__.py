"""The long-running service: the cycle it repeats and what runs around it.

`daemon` (APScheduler jobs, signals, systemd's watchdog through `systemd_notify`), `cycle` (one
pass: detection, then delivery), `interruption` (leaving claimed notes as they were found on a
stop), `nightly` and `valuation` (lifetime values recomputed), `ltv_report` (what
`appreciate ltv` and the console show of them), `last_cycle` and `queue_status` (what
`appreciate status` reads), `planning` (`appreciate plan`: the cycle simulated in a rolled-back
transaction) and `sink` (a local SMTP server that keeps what it is sent).

May import delivery, detection, notes, the importer, the store, the core and config; never the
web service or the commands (the daemon serves the web beside it through a companion the
command hands it).
"""
