"""`appreciate web`: the unsubscribe page (and, to come, the owner's console), served on its own."""

from __future__ import annotations

from typing import Annotated

import typer

from scheduler.cli.common import cli_state, err, opened_store


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
    """Serve the unsubscribe page customers reach from their notes, until Ctrl-C or SIGTERM.

    `GET /u/TOKEN` shows a page that asks before anything changes; `POST /u/TOKEN` records the
    opt-out (also the one-click button mail apps show, RFC 8058) and stops the customer's open
    notes at once. Put it behind your web server's https address and set that address as
    [web] public_url, so notes link it. `appreciate run` serves it too when [web] enabled = true.
    """
    from scheduler.clock import SystemClock
    from scheduler.web.app import create_app
    from scheduler.web.serve import serve

    config = cli_state(ctx).config()
    settings = config.settings
    bound_host = host or settings.web.host
    bound_port = port or settings.web.port
    with opened_store(config) as engine:
        app = create_app(engine, settings, SystemClock())
        err.print(f"Serving the unsubscribe page on http://{bound_host}:{bound_port}", markup=False)
        if settings.web.public_url:
            err.print(f"Customers reach it at {settings.web.public_url}/u/...", markup=False)
        else:
            err.print(
                "Customers cannot reach it yet: set [web] public_url to the https address your "
                "web server forwards here, so notes link it.",
                markup=False,
            )
        serve(app, bound_host, bound_port)
