"""The templates in the console, on both databases: what `templates check` finds (read again on
every visit), and a preview written as `appreciate preview` writes it, its HTML in a frame that
can run nothing; nothing is sent or saved."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from scheduler.config.settings import Settings
from scheduler.store.models import metadata
from scheduler.web.app import create_app
from tests.conftest import adas_bakery
from tests.test_detection import add_customer
from tests.test_owner_login import HASH, MovableClock, log_in

NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
STARTERS = Path(__file__).parent.parent / "templates"
SETTINGS = Settings(business=adas_bakery())
HOSTILE = "<script>alert(1)</script>"


def site(engine: Engine, folder: Path, logged_in: bool = True) -> TestClient:
    app = create_app(engine, SETTINGS, MovableClock(NOW), HASH, 0, templates_dir=folder)
    client = TestClient(app, follow_redirects=False)
    if logged_in:
        assert log_in(client)[0] == 303
    return client


def starters(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    shutil.copytree(STARTERS, folder)
    return folder


def test_the_templates_page_is_behind_the_login(engine: Engine, tmp_path: Path) -> None:
    anonymous = site(engine, starters(tmp_path), logged_in=False)
    assert anonymous.get("/templates").headers["location"] == "login"
    assert anonymous.get("/templates/preview.html?kind=birthday&customer=C-1").status_code == 401


def test_the_check_is_read_again_on_every_visit(engine: Engine, tmp_path: Path) -> None:
    folder = starters(tmp_path)
    client = site(engine, folder)
    first = client.get("/templates").text
    assert "birthday.j2" in first
    assert ">error<" not in first
    (folder / "birthday.j2").write_text("{% block subject %}{{ oops(}}{% endblock %}")
    second = client.get("/templates").text
    assert ">error<" in second
    assert "birthday.j2" in second


def test_a_preview_is_written_for_a_real_customer_and_nothing_is_saved(
    engine: Engine, tmp_path: Path
) -> None:
    add_customer(engine, "C-1", name=f"{HOSTILE} Ann", birth_month=6, birth_day=20)
    client = site(engine, starters(tmp_path))
    page = client.get("/templates?kind=birthday&customer=C-1")
    assert page.status_code == 200
    assert "Subject: " in page.text
    assert HOSTILE not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    frame = client.get("/templates/preview.html?kind=birthday&customer=C-1")
    assert frame.status_code == 200
    assert "default-src 'none'" in frame.headers["content-security-policy"]
    assert frame.headers["x-frame-options"] == "SAMEORIGIN"
    with engine.connect() as connection:
        for table in ("touches", "unsubscribe_tokens"):
            count = connection.execute(select(func.count()).select_from(metadata.tables[table]))
            assert count.scalar_one() == 0, table


def test_a_preview_that_cannot_be_made_says_why(engine: Engine, tmp_path: Path) -> None:
    client = site(engine, starters(tmp_path))
    page = client.get("/templates?kind=birthday&customer=nobody")
    assert page.status_code == 200
    assert "No preview: there is no customer with id" in page.text
    assert client.get("/templates?kind=wedding&customer=C-1").status_code == 200
    assert "is not an occasion" in client.get("/templates?kind=wedding&customer=C-1").text


def test_a_customer_id_with_a_nul_has_no_preview(engine: Engine, tmp_path: Path) -> None:
    """PostgreSQL's text cannot hold a NUL: such an id names nobody, on both databases."""
    client = site(engine, starters(tmp_path))
    page = client.get("/templates?kind=birthday&customer=A%00")
    assert page.status_code == 200
    assert "No preview: there is no customer with id" in page.text
    assert client.get("/templates/preview.html?kind=birthday&customer=A%00").status_code == 404
