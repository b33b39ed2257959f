"""appreciate: automatic, personal thank-you notes for the customers who matter most.

The packages, each importing only those below it (import-linter checks this: `lint-imports`,
with the contracts in pyproject.toml):

    cli                   the commands
    web                   the web service: the unsubscribe page
    service               the daemon, its cycle, plan, status, the local sink
    delivery | detection  sending due notes | finding occasions (independent of each other)
    notes | importer      writing notes from templates | reading CSV exports
    store                 tables, migrations, the outbox
    occasions | ltv       the pure core: rules and lifetime value
    config                settings models and the config file

Leaf modules at the top (`clock`, `zones`, `local_days`, `tiers`, `vocabulary`, `addresses`,
`errors`, `output`, `progress`) import no package but config.
"""

__version__ = "0.1.0"
