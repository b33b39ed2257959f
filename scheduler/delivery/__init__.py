"""Delivery: claiming due notes, sending them over SMTP, and recording what happened.

`deliver` (the Sender: claim, write, send, record), `claims` (leases that make a note go exactly
once across instances and crashes), `smtp_client` (one connection and how each reply is read),
`pipelining` (the replies to MAIL, RCPT and DATA sent together), `send_checks` (what a claimed
note passes before it is written), `daily_budget` (the budget applied to the outbox),
`store_gate` (the workers' way to a store another writer may hold locked) and `sent_log` (what
`appreciate log` and `show` read).

May import notes, the store, the core and config; never the service, the commands or
detection (the two halves meet only in the store's outbox).
"""
