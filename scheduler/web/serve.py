"""Serving the web application with uvicorn: on its own, or inside the service's event loop.

Rules: no access log (every unsubscribe address holds a token, and tokens never reach logs:
the routes log what they did, by the business's own customer id); no `Server` header; the
forwarded-for headers of a reverse proxy are trusted from loopback only (uvicorn's default).
Inside the service, the socket is bound first: a port already taken is an error the service
logs and runs on without the page (uvicorn itself would exit the process), and the service
keeps its own signal handling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from sqlalchemy import Engine
from starlette.applications import Starlette

from scheduler.clock import Clock
from scheduler.config.settings import Settings
from scheduler.store.opt_out_spool import OptOutSpool
from scheduler.web.app import create_app
from scheduler.web.opt_out_replays import Replays

log = logging.getLogger("appreciate.web")


def server_config(app: Starlette, host: str, port: int) -> uvicorn.Config:
    """How uvicorn runs the application (see the module's rules)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        server_header=False,
        lifespan="off",
        log_level="warning",
    )


def serve(app: Starlette, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn handles both, finishing requests under way),
    recording opt-outs kept on disk meanwhile (`Replays`)."""
    with Replays(app.state.web):
        uvicorn.Server(server_config(app, host, port)).run()


class _Embedded(uvicorn.Server):
    """uvicorn inside another program's event loop: that program handles the signals."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmbeddedWeb:
    """The application served as a task of the running event loop; `stop()` ends it."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        self.listening = bind(host, port)  # raises OSError: taken, or not an address here
        self.address = "{}:{}".format(*self.listening.getsockname()[:2])
        self._server = _Embedded(server_config(app, host, port))
        self._task = asyncio.create_task(self._server.serve(sockets=[self.listening]))
        self._replays = Replays(app.state.web).start()

    async def stop(self) -> None:
        """Stop accepting, finish the requests under way, close the socket."""
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self.listening.close()
            await asyncio.to_thread(self._replays.stop)


def start_embedded(
    engine: Engine,
    settings: Settings,
    clock: Clock,
    password_hash: str | None = None,
    templates_dir: Path | None = None,
    spool: OptOutSpool | None = None,
) -> EmbeddedWeb | None:
    """With `[web] enabled`, the web service in the running event loop (for `appreciate run`);
    a port it cannot listen on is logged, and None lets the service run on without it."""
    web = settings.web
    if not web.enabled:
        return None
    app = create_app(
        engine, settings, clock, password_hash, templates_dir=templates_dir, spool=spool
    )
    try:
        served = EmbeddedWeb(app, web.host, web.port)
    except OSError as error:
        log.error(
            "the unsubscribe page cannot listen on %s:%s (%s); running on without it",
            web.host,
            web.port,
            error.strerror or error,
        )
        return None
    log.info("serving the unsubscribe page on http://%s", served.address)
    return served


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (0: any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
        listening.listen(128)
    except OSError:
        listening.close()
        raise
    return listening
