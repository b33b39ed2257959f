"""`appreciate web`: the unsubscribe page and the owner's console, served on their own; and
`appreciate web hash-password`, which makes the owner's password hash."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.common import cli_state, err

web_app = typer.Typer(no_args_is_help=False, invoke_without_command=True)
MIN_PASSWORD = 12


@web_app.callback()
def web(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option("--host", help="Address to listen on. Default: [web] host (127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=1, max=65535, help="Port. Default: [web] port (8080)."),
    ] = None,
) -> None:
    """Serve the unsubscribe page and the owner's console, until Ctrl-C or SIGTERM.

    `GET /u/TOKEN` shows a page that asks before anything changes; `POST /u/TOKEN` records the
    opt-out (also the one-click button mail apps show, RFC 8058) and stops the customer's open
    notes at once. Put only /u/ behind your web server's https address and set that address as
    [web] public_url, so notes link it. The console (/) needs the owner's password: see
    `appreciate web hash-password`. `appreciate run` serves all this too with [web] enabled.
    """
    if ctx.invoked_subcommand is not None:
        return
    from scheduler.cli.common import opened_store
    from scheduler.cli.service_logging import setup_logging
    from scheduler.clock import SystemClock
    from scheduler.store.opt_out_spool import OptOutSpool
    from scheduler.web.app import create_app
    from scheduler.web.login import needs_password
    from scheduler.web.serve import serve

    config = cli_state(ctx).config()
    settings = config.settings
    bound_host = host or settings.web.host
    bound_port = port or settings.web.port
    password_hash = config.web_password_hash()
    if password_hash is None and needs_password(bound_host):
        err.print(
            f"Refusing to serve on {bound_host}, beyond this machine, without an owner password:"
            " make one with `appreciate web hash-password` and name it as [web] "
            "password_hash_file (or password_hash_env), or serve on 127.0.0.1.",
            markup=False,
        )
        raise typer.Exit(1)
    setup_logging()  # opt-outs and owner actions, one line each (journald's priorities)
    with opened_store(config) as engine:
        spool = OptOutSpool.of(config)
        app = create_app(
            engine,
            settings,
            SystemClock(),
            password_hash,
            templates_dir=config.templates_dir,
            spool=spool,
        )
        err.print(f"Serving on http://{bound_host}:{bound_port}", markup=False)
        if settings.web.public_url:
            err.print(f"Customers reach the unsubscribe page at {settings.web.public_url}/u/...")
        else:
            err.print(
                "Customers cannot reach the unsubscribe page yet: set [web] public_url to the "
                "https address your web server forwards here, so notes link it.",
                markup=False,
            )
        if password_hash is None:
            err.print(
                "Nobody can log in to the console: no owner password is set (see "
                "`appreciate web hash-password`).",
                markup=False,
            )
        serve(app, bound_host, bound_port)


@web_app.command("hash-password")
def hash_password_command() -> None:
    """Make a hash of the owner's password for the console (asks for it twice, shows nothing).

    Put the line it prints in a file only you can read (`chmod 600`) and name it in the config
    as [web] password_hash_file, or put it in an environment variable named by [web]
    password_hash_env. The password itself is never stored.
    """
    from scheduler.web.login import hash_password

    password = typer.prompt("Owner password", hide_input=True, err=True)
    if len(password) < MIN_PASSWORD:
        err.print(f"Too short: use at least {MIN_PASSWORD} characters.", markup=False)
        raise typer.Exit(1)
    again = typer.prompt("The same again", hide_input=True, err=True)
    if again != password:
        err.print("The two did not match; nothing was made.", markup=False)
        raise typer.Exit(1)
    typer.echo(hash_password(password))  # plain: a terminal must not wrap it
