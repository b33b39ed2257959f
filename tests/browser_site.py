"""A real site for the browser tests: the web application served by uvicorn over TLS on
loopback (in a thread of the test process), and headless Chromium driven by Playwright.

Rules:
- Chromium is Debian's `chromium` package, at APPRECIATE_TEST_CHROMIUM (default
  /usr/bin/chromium): Playwright's own browser download is not used. Without it the browser
  tests skip, saying where they looked (`.ci/run` installs the package when it can).
- The site is served as an owner serves it: the same uvicorn settings as `appreciate web`, the
  workspace's own config (its password hash file, its templates), and an https address, so the
  config's `[web] public_url` is the very address notes link and the session cookie is Secure.
  The certificate comes from a throwaway CA (trustme) the browser does not know, so the
  browser contexts ignore certificate errors (they only ever reach this loopback site).
- The site's socket is listening before the server starts, so nobody waits for it to start.
- Screenshots go to APPRECIATE_TEST_ARTIFACTS (default tests/artifacts/browser, ignored by
  git); the test run's summary says where.
- No page a test opens may log an error to the browser's console (a style sheet, a frame or a
  script the content security policy or a sandbox refuses) or fail to load a part (an answer
  of 400 or more to anything but the page itself), but the errors the test expects, which
  must then appear: `watched` checks it.
- Playwright's synchronous API keeps an event loop running in the test's thread: the commands
  a test runs (`appreciate send`, `appreciate sink`) run as processes of their own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
import uvicorn
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    ViewportSize,
    expect,
    sync_playwright,
)
from sqlalchemy import Engine

from scheduler.cli.demo import edit_config
from scheduler.clock import Clock
from scheduler.config.file import load_config
from scheduler.store.db import create_store_engine
from scheduler.web.app import create_app
from scheduler.web.login import hash_password
from scheduler.web.serve import bind, server_config
from tests.conftest import Workspace

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ENV = "APPRECIATE_TEST_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
ARTIFACTS_ENV = "APPRECIATE_TEST_ARTIFACTS"
DEFAULT_ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # Chromium calls home at start (updates, sync, field trials); on a closed network those
    # connections are refused, so none is made.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "the owner's long password"  # noqa: S105 - the tests' own
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000
"""How long Playwright waits for a page or an element: only reached when something is wrong."""
SCREENSHOTS: list[Path] = []
"""Every screenshot this run took (the summary in tests/conftest.py names their folder)."""


def chromium_executable() -> Path:
    """The Chromium the tests drive, or a skip saying why there is none."""
    path = Path(os.environ.get(CHROMIUM_ENV) or DEFAULT_CHROMIUM)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.skip(
            f"no Chromium at {path}: install Debian's chromium package, or set {CHROMIUM_ENV} "
            "to a Chromium executable"
        )
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium, for as long as the block runs.

    Playwright's synchronous API keeps an event loop marked as running in this thread while it
    is open: code that calls `asyncio.run` (the CLI's delivery, say) must run in another thread
    or process meanwhile.
    """
    executable = chromium_executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def artifacts() -> Path:
    """Where screenshots go (made when first needed)."""
    folder = Path(os.environ.get(ARTIFACTS_ENV) or DEFAULT_ARTIFACTS)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Page, name: str) -> Path:
    """A screenshot of the whole of `page` as artifacts()/NAME.png.

    The viewport is made as tall as the page for it (then put back): Chromium paints no part
    of a sandboxed frame (a frame of its own process) that lies below the viewport, so a
    `full_page` screenshot would show a note's HTML as a blank box.
    """
    path = artifacts() / f"{name}.png"
    viewport = page.viewport_size
    assert viewport is not None
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(height, viewport["height"])})
    try:
        page.screenshot(path=path)
    finally:
        page.set_viewport_size(viewport)
    SCREENSHOTS.append(path)
    return path


@dataclass
class Site:
    """The application served at `url` (https://127.0.0.1:PORT, no slash at the end)."""

    url: str
    engine: Engine
    workspace: Workspace


def prepare_workspace(workspace: Workspace, port: int, more_config: str = "") -> None:
    """Complete a test workspace as an owner would: the starter templates, the owner's
    password hash in a file, the public address the site is served at, and `more_config`."""
    shutil.copytree(ROOT / "templates", workspace.folder / "templates", dirs_exist_ok=True)
    (workspace.folder / "owner.hash").write_text(hash_password(PASSWORD) + "\n", encoding="utf-8")
    web = {"public_url": f"https://127.0.0.1:{port}", "password_hash_file": "owner.hash"}
    if "\n[web]\n" in workspace.path.read_text(encoding="utf-8"):  # written from the example
        edit_config(workspace.path, {"web": web})
    else:
        more_config = (
            "[web]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in web.items()) + more_config
        )
    with workspace.path.open("a", encoding="utf-8") as config:
        config.write(f"\n{more_config}")


@contextmanager
def serving(workspace: Workspace, clock: Clock, more_config: str = "") -> Iterator[Site]:
    """The workspace's site over TLS on a free loopback port, until the block ends
    (`prepare_workspace` first completes the workspace's config with `more_config`)."""
    listening = bind("127.0.0.1", 0)
    port = listening.getsockname()[1]
    prepare_workspace(workspace, port, more_config)
    config = load_config(workspace.path)
    engine = create_store_engine(config.database_url())
    app = create_app(
        engine,
        config.settings,
        clock,
        config.web_password_hash(),
        templates_dir=config.templates_dir,
    )
    served = server_config(app, "127.0.0.1", port)
    served.ssl_certfile = served.ssl_keyfile = str(_certificate(workspace.folder))
    server = uvicorn.Server(served)
    thread = threading.Thread(target=asyncio.run, args=(server.serve(sockets=[listening]),))
    thread.start()
    try:
        yield Site(f"https://127.0.0.1:{port}", engine, workspace)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
        engine.dispose()
    assert not thread.is_alive(), "the site did not stop"


def _certificate(folder: Path) -> Path:
    """A key and certificate for 127.0.0.1 in one PEM file, from a throwaway CA."""
    path = folder / "site.pem"
    trustme.CA().issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return path


@contextmanager
def watched(
    browser: Browser,
    site: Site,
    viewport: ViewportSize = DESKTOP,
    expected: tuple[str, ...] = (),
) -> Iterator[Page]:
    """A fresh browser context (its own cookies) on `site` and a page in it. When the block
    ends without an error, no page in it may have logged an error to its console but those
    containing one of `expected`, and each of those must have been logged."""
    context = browser.new_context(
        base_url=site.url,
        ignore_https_errors=True,
        viewport=viewport,
    )
    context.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []

    def logged(message: ConsoleMessage) -> None:
        # A page's own status is the test's to check; what it loads must load (see `answered`).
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def answered(response: Response) -> None:
        request = response.request
        is_page = request.is_navigation_request() and request.frame.parent_frame is None
        if response.status >= 400 and not is_page:
            errors.append(f"{response.status} for {request.resource_type} {response.url}")

    context.on("console", logged)
    context.on("weberror", lambda error: errors.append(f"uncaught: {error.error}"))
    context.on("response", answered)
    try:
        yield context.new_page()
        unexpected = [e for e in errors if not any(part in e for part in expected)]
        assert unexpected == [], "the browser logged errors:\n" + "\n".join(unexpected)
        for part in expected:
            assert any(part in error for error in errors), f"the browser never logged: {part}"
    finally:
        context.close()


def log_in(page: Page, password: str = PASSWORD) -> None:
    """Log in as the owner from the login page, and land on Today."""
    page.goto("/login")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Today", exact=True)).to_be_visible()
