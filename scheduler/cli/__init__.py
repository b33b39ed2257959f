"""The commands: what a person types, and what it prints.

`app` is the `appreciate` command (typer); `common` holds what every command shares (finding
the config, opening the store, printing a problem without a traceback); each other module is a
group of commands (`daemon`, `delivery`, `notes`, `ltv`, `sink`) or what only a command uses
(`demo`, `demo_data`, `workspace`). Commands import what they use when they run,
so `appreciate --help` loads no store and no numerical library.

May import every other package; nothing imports `scheduler.cli` (the top layer).
"""
