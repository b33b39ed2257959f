"""Benchmark: writing notes in the sandbox, and `templates check` against a large store.

Two measurements, each timed `--repeat` times with `time.perf_counter` (medians printed):

- render: the starter templates (every kind, in turn) written `--renders` times from their
  sample contexts with `NoteRenderer.render` (subject, text and HTML), as the sender does: the
  sandbox's deadline and stop checks are on. Prints notes/s and microseconds a note.
- check: a store of `--customers` customers (SQLite in a temporary folder, or the PostgreSQL
  database of `--database-url`, in a schema of its own, dropped afterwards), 90% of them with
  an attribute `dentist`, 30% with `pet_name`, 20% with `preferred_name`; then, timed apart:
  `AttributeCensus.take` (one query for the names every customer holds), `lacking("dentist")`
  (who lacks it), and the whole `check_templates` with the starters plus a birthday note that
  uses `customer.attributes.dentist`.

    python bench/templates.py                           # 100,000 customers, SQLite
    python bench/templates.py --database-url postgresql://root@127.0.0.1:5432/test
    python bench/templates.py --customers 10000 --renders 2000 --repeat 3   # a quick check

Exits 0 either way (a measurement, not a test).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from scheduler.config.settings import BusinessSettings, Settings
from scheduler.notes.note_context import sample_context
from scheduler.notes.render import NoteRenderer
from scheduler.notes.template_check import check_templates
from scheduler.store.attributes import AttributeCensus
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from scheduler.store.schema import upgrade
from scheduler.vocabulary import OCCASION_KINDS

STARTERS = Path(__file__).parent.parent / "templates"
SETTINGS = Settings(
    business=BusinessSettings(
        name="Ada's Bakery",
        sender_name="Ada",
        sender_email="ada@example.com",
        timezone="Europe/London",
        review_url="https://g.page/r/ada/review",
        unsubscribe_url="https://ada.example/unsubscribe/{token}",
    )
)
DENTIST_NOTE = (
    '{% extends "_layout.j2" %}\n{% block subject %}Happy birthday{% endblock %}\n'
    "{% block message %}\nDr {{ customer.attributes.dentist }} sends best wishes.\n"
    "{% endblock %}\n"
)
CHUNK = 10_000


def median_of(repeat: int, work: Callable[[], object]) -> tuple[float, float, float]:
    """(median, fastest, slowest) seconds of `repeat` runs of `work`."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def bench_render(renders: int, repeat: int) -> None:
    renderer = NoteRenderer(STARTERS)
    contexts = [(kind, sample_context(kind, SETTINGS)) for kind in OCCASION_KINDS]

    def render_all() -> None:
        for number in range(renders):
            kind, context = contexts[number % len(contexts)]
            renderer.render(kind, None, context)

    render_all()  # compile every template once, outside the timing
    middle, fastest, slowest = median_of(repeat, render_all)
    print(
        f"render: {renders:,} notes, median {renders / middle:,.0f} notes/s "
        f"({renders / slowest:,.0f}-{renders / fastest:,.0f}); "
        f"{middle / renders * 1e6:,.1f} us a note"
    )


def fill_store(engine: Engine, customers: int) -> None:
    rng = random.Random(7)
    table = metadata.tables["customers"]
    with engine.begin() as connection:
        for start in range(0, customers, CHUNK):
            rows = []
            for number in range(start, min(start + CHUNK, customers)):
                attributes = {}
                if rng.random() < 0.9:
                    attributes["dentist"] = rng.choice(["Lee", "Khan", "Wood"])
                if rng.random() < 0.3:
                    attributes["pet_name"] = rng.choice(["Rex", "Tess", "Biscuit"])
                if rng.random() < 0.2:
                    attributes["preferred_name"] = "Sam"
                rows.append(
                    {
                        "external_id": f"C-{number:07d}",
                        "name": f"Customer {number}",
                        "email": f"c{number}@example.com",
                        "attributes": attributes,
                    }
                )
            connection.execute(insert(table), rows)


def bench_check(url: str, customers: int, repeat: int, folder: Path) -> None:
    engine = create_store_engine(url)
    try:
        upgrade(engine)
        started = time.perf_counter()
        fill_store(engine, customers)
        print(f"check: {customers:,} customers stored in {time.perf_counter() - started:.1f} s")
        templates = folder / "templates"
        shutil.copytree(STARTERS, templates)
        (templates / "birthday.j2").write_text(DENTIST_NOTE, encoding="utf-8")
        found: dict[str, Any] = {}
        with engine.connect() as connection:

            def take() -> None:
                found["census"] = AttributeCensus.take(connection)

            def lacking() -> None:
                found["lacking"] = AttributeCensus.take(connection).lacking("dentist")

            def whole() -> None:
                census = AttributeCensus.take(connection)
                found["findings"] = check_templates(templates, SETTINGS, census)

            for name, work in (("census", take), ("census + lacking", lacking), ("check", whole)):
                middle, fastest, slowest = median_of(repeat, work)
                print(
                    f"check: {name}: median {middle * 1000:,.1f} ms "
                    f"({fastest * 1000:,.1f}-{slowest * 1000:,.1f})"
                )
        print(f"check: names held: {sorted(found['census'].names)}")
        print(f"check: dentist lacking: {found['lacking'][0]:,} ({', '.join(found['lacking'][1])})")
        print(f"check: first finding: {found['findings'][0]}")
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL database to use instead of SQLite")
    options = parser.parse_args()
    bench_render(options.renders, options.repeat)
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        if options.database_url is None:
            bench_check(
                f"sqlite:///{folder / 'store.db'}", options.customers, options.repeat, folder
            )
            return
        base = make_url(options.database_url)
        if base.drivername == "postgresql":
            base = base.set(drivername="postgresql+psycopg")
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        try:
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            url = base.update_query_dict({"options": f"-csearch_path={schema}"})
            bench_check(
                url.render_as_string(hide_password=False), options.customers, options.repeat, folder
            )
        finally:
            with admin.begin() as connection:
                connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


if __name__ == "__main__":
    main()
