"""`appreciate cards` and `appreciate calls` end to end: customers imported with their postal
address and phone, real PDFs rendered by WeasyPrint and read back with poppler-utils
(pdfinfo, pdftotext, pdftoppm), notes marked printed once, calls recorded as sent notes.
SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from scheduler.service.daily_summary import daily_summary
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import Workspace, run_cli

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
touch_events = metadata.tables["touch_events"]
STARTERS = Path(__file__).parent.parent / "templates"
NOW = datetime(2027, 6, 15, 9, 0, tzinfo=UTC)
DAY = "2027-06-15"
ARTIFACTS = Path(__file__).parent / "artifacts" / "cards"
A4_POINTS = (595, 842)
ADDRESS = ["1 High Street", "Flat 2", "Bath", "BA1 1AA", "Somerset", "United Kingdom"]
HEADER = ["id", "name", "email", "phone", "address_line1", "address_line2", "city"]
HEADER += ["postal_code", "region", "country"]


def _pdf_tools_missing() -> str | None:
    for tool in ("pdftoppm", "pdftotext", "pdfinfo"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (Debian: apt-get install poppler-utils)"
    try:
        import weasyprint  # noqa: F401, PLC0415 - only to learn whether Pango loads
    except (ImportError, OSError) as error:
        return f"WeasyPrint cannot load ({error}): Debian's libpango-1.0-0 libpangoft2-1.0-0"
    return None


needs_pdf = pytest.mark.skipif(_pdf_tools_missing() is not None, reason=_pdf_tools_missing() or "")


def cli(workspace: Workspace, *args: str | Path) -> tuple[int, str, str]:
    result = run_cli("--config", workspace.path, *args)
    return result.exit_code, result.stdout, result.stderr


def with_channels(workspace: Workspace, channels: str = 'cards = ["vip"]') -> None:
    text = workspace.path.read_text(encoding="utf-8")
    workspace.path.write_text(text + f"\n[channels]\n{channels}\n", encoding="utf-8")


def import_customers(workspace: Workspace, rows: list[list[str]]) -> None:
    path = workspace.folder / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows([HEADER, *rows])
    code, _, stderr = cli(workspace, "import", "customers", path, "--now", NOW.isoformat())
    assert code == 0, stderr


def add_note(
    engine: Engine,
    external_id: str,
    channel: str,
    *,
    kind: str = "birthday",
    due: datetime = NOW,
    expires: datetime | None = None,
) -> int:
    with engine.begin() as connection:
        who = connection.execute(
            select(customers.c.id).where(customers.c.external_id == external_id)
        ).scalar_one()
        touch_id: int = connection.execute(
            insert(touches).values(
                customer_id=who,
                kind=kind,
                occasion_key="birthday:2027" if kind == "birthday" else "anniversary:3",
                status="pending",
                channel=channel,
                due_at=due,
                expires_at=expires or due + timedelta(days=12),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
    return touch_id


@pytest.fixture
def shop(migrated_workspace: Workspace) -> Any:
    """The starter templates, [channels] set, and three customers: two with an address."""
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    with_channels(migrated_workspace)
    import_customers(
        migrated_workspace,
        [
            ["C-1", "Ann Lee", "ann@example.com", "+44 20 7946 0001", *ADDRESS],
            ["C-2", "Bob Stone", "", "", "9 Mill Lane", "", "York", "YO1 7HH", "", "UK"],
            ["C-3", "Cleo Ward", "cleo@example.com", "", "", "", "", "", "", ""],
        ],
    )
    engine = create_store_engine(migrated_workspace.database_url)
    yield migrated_workspace, engine
    engine.dispose()


def state(engine: Engine, touch_id: int) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(select(touches).where(touches.c.id == touch_id)).one()._mapping
        )


def tool(name: str) -> str:
    """The full path of a poppler-utils program."""
    return shutil.which(name) or name


def pdf_info(path: Path) -> dict[str, str]:
    command = [tool("pdfinfo"), str(path)]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return dict(line.split(":", 1) for line in output.splitlines() if ":" in line)


def pdf_text(path: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    command = [tool("pdftotext"), "-layout", *pages, str(path), "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def page_size(info: dict[str, str]) -> tuple[int, int]:
    width, _, height = info["Page size"].split()[:3]
    return round(float(width)), round(float(height))


def to_png(path: Path, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / path.stem
    subprocess.run([tool("pdftoppm"), "-png", "-r", "60", path, prefix], check=True)
    return sorted(folder.glob(f"{path.stem}*.png"))


def test_customers_import_a_postal_address_and_a_phone(shop: Any) -> None:
    _, engine = shop
    with engine.connect() as connection:
        ann = connection.execute(select(customers).where(customers.c.external_id == "C-1")).one()
    assert ann.phone == "+44 20 7946 0001"
    assert [ann.address_line1, ann.address_line2, ann.city, ann.postal_code] == ADDRESS[:4]
    assert [ann.region, ann.country] == ADDRESS[4:]


def test_an_address_with_a_control_character_or_too_long_rejects_its_row_only(
    shop: Any,
) -> None:
    workspace, engine = shop
    path = workspace.folder / "bad.csv"
    with path.open("w", newline="", encoding="utf-8") as file:
        csv.writer(file).writerows(
            [
                ["id", "name", "address_line1", "postal_code", "phone"],
                ["C-7", "Gus", "1 Road\x1b[2J", "", ""],
                ["C-8", "Hal", "", "X" * 21, ""],
                ["C-9", "Ivy", "", "", "call me"],
                ["C-10", "Jo", "2 Road", "AB1", "+1 (555) 010-0000 x12"],
            ]
        )
    code, stdout, stderr = cli(workspace, "import", "customers", path, "--now", NOW.isoformat())
    assert code != 0 or "3" in stdout
    told = stdout + stderr
    assert "address_line1" in told
    assert "control character" in told
    assert "postal_code" in told
    assert "longer than 20 characters" in told
    assert '"call me" is not a phone number' in told
    with engine.connect() as connection:
        kept = set(connection.execute(select(customers.c.external_id)).scalars())
    assert "C-10" in kept
    assert not {"C-7", "C-8", "C-9"} & kept


@needs_pdf
def test_the_days_cards_print_as_folded_a4_pages_and_are_marked_printed(shop: Any) -> None:
    workspace, engine = shop
    ann = add_note(engine, "C-1", "card")
    bob = add_note(engine, "C-2", "card", kind="anniversary")
    cleo = add_note(engine, "C-3", "card", due=NOW - timedelta(days=2))  # overdue, in time
    later = add_note(engine, "C-1", "card", kind="anniversary", due=NOW + timedelta(days=2))
    email = add_note(engine, "C-2", "email")
    out = workspace.folder / "print"
    code, stdout, stderr = cli(
        workspace, "cards", "--date", DAY, "--out", out, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert sorted(report["notes"]) == sorted([ann, bob, cleo])
    assert report["without_address"] == ["Cleo Ward"]
    assert "no postal address, so no label: Cleo Ward" in stderr

    cards = Path(report["cards_pdf"])
    info = pdf_info(cards)
    assert int(info["Pages"]) == 3
    assert page_size(info) == A4_POINTS
    texts = [pdf_text(cards, page) for page in (1, 2, 3)]
    assert "Ann" in texts[0]
    assert "Happy birthday" in texts[0]
    assert "Bob" in texts[1]
    assert "Thank you" in texts[1]
    assert "Cleo" in texts[2]
    assert all("Ada's Bakery" in text for text in texts)  # the back
    shots = to_png(cards, ARTIFACTS)
    assert len(shots) == 3
    assert all(shot.stat().st_size > 1000 for shot in shots)

    labels = Path(report["labels_pdf"])
    assert int(pdf_info(labels)["Pages"]) == 1
    label_text = pdf_text(labels)
    assert "Ann Lee" in label_text
    # Royal Mail's order (town, then postcode), and the country: sent from abroad (en_US)
    assert label_text.index("BATH") < label_text.index("BA1 1AA") < label_text.index("UNITED")
    assert "BA1 1AA Bath" not in label_text
    assert "Bob Stone" in label_text
    assert "Cleo" not in label_text
    to_png(labels, ARTIFACTS)

    for touch_id in (ann, bob, cleo):
        printed = state(engine, touch_id)
        assert printed["status"] == "printed"
        assert printed["printed_at"] == NOW
    assert state(engine, later)["status"] == "pending"
    assert state(engine, email)["status"] == "pending"


@needs_pdf
def test_cards_print_once_a_day_unless_again(shop: Any) -> None:
    workspace, engine = shop
    ann = add_note(engine, "C-1", "card")
    out = workspace.folder / "print"
    args = ("cards", "--date", DAY, "--out", out, "--now", NOW.isoformat(), "-f", "json")
    assert json.loads(cli(workspace, *args)[1])["notes"] == [ann]
    second = json.loads(cli(workspace, *args)[1])
    assert (second["notes"], second["cards_pdf"]) == ([], None)
    again = json.loads(cli(workspace, *args, "--again")[1])
    assert again["notes"] == [ann]


@needs_pdf
def test_a_second_run_the_same_day_never_writes_over_the_first_runs_pdfs(shop: Any) -> None:
    """The morning's cards, not printed yet, were overwritten by the afternoon's one new card
    (and marked printed): each run now writes PDFs of its own beside the earlier ones."""
    workspace, engine = shop
    morning = [add_note(engine, "C-1", "card"), add_note(engine, "C-2", "card")]
    out = workspace.folder / "print"
    args = ("cards", "--date", DAY, "--out", out, "-f", "json")
    first = json.loads(cli(workspace, *args, "--now", NOW.isoformat())[1])
    assert sorted(first["notes"]) == sorted(morning)
    afternoon = add_note(engine, "C-3", "card", kind="anniversary")
    later = (NOW + timedelta(hours=5)).isoformat()
    code, stdout, stderr = cli(workspace, *args, "--now", later)
    assert code == 0, stderr
    second = json.loads(stdout)
    assert second["notes"] == [afternoon]
    assert second["cards_pdf"] != first["cards_pdf"]
    assert int(pdf_info(Path(first["cards_pdf"]))["Pages"]) == 2
    assert "Ann" in pdf_text(Path(first["cards_pdf"]), 1)
    assert int(pdf_info(Path(second["cards_pdf"]))["Pages"]) == 1
    assert "Cleo" in pdf_text(Path(second["cards_pdf"]))
    assert "Bob Stone" in pdf_text(Path(first["labels_pdf"]))
    assert Path(second["cards_pdf"]).name == f"cards-{DAY}-2.pdf"
    assert second["labels_pdf"] is None  # Cleo has no address
    again = json.loads(cli(workspace, *args, "--now", later, "--again")[1])
    assert Path(again["cards_pdf"]).name == f"cards-{DAY}-3.pdf"
    assert Path(again["labels_pdf"]).name == f"labels-{DAY}-3.pdf"


@needs_pdf
@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_out_folder_that_cannot_be_written_is_named_and_nothing_is_marked(
    shop: Any, where: str
) -> None:
    """`--out` naming a file (or a folder inside one) was a traceback; now a message naming
    --out, no PDF, and the cards stay due for the next run."""
    workspace, engine = shop
    ann = add_note(engine, "C-1", "card")
    taken = workspace.folder / "cards.pdf"
    taken.write_bytes(b"the owner's own file")
    out = taken if where == "a file" else taken / "print"
    code, stdout, stderr = cli(workspace, "cards", "--out", out, "--now", NOW.isoformat())
    assert code == 1
    assert stderr.startswith(f"error: cannot write the cards' PDFs into --out {out}: ")
    assert ("it is a file, not a folder" if where == "a file" else "Not a directory") in stderr
    assert "nothing was marked printed" in stderr
    assert "Traceback" not in stdout + stderr
    assert taken.read_bytes() == b"the owner's own file"
    assert state(engine, ann)["status"] == "pending"
    good = workspace.folder / "print"
    code, stdout, stderr = cli(
        workspace, "cards", "--out", good, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 0, stderr
    assert json.loads(stdout)["notes"] == [ann]


@needs_pdf
def test_an_address_longer_than_a_label_gets_no_label_and_a_warning(shop: Any) -> None:
    """An address of 40 lines (written into the store by the business's own app) printed a
    label cut after 7 lines, without its town or postcode, and said nothing: now it gets its
    card, no label, and a warning naming the customer, like one without an address."""
    workspace, engine = shop
    with engine.begin() as connection:
        connection.execute(
            update(customers)
            .where(customers.c.external_id == "C-2")
            .values(address_line1="\n".join(str(n) for n in range(40)))
        )
    ann = add_note(engine, "C-1", "card")
    bob = add_note(engine, "C-2", "card")
    out = workspace.folder / "print"
    code, stdout, stderr = cli(
        workspace, "cards", "--out", out, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert sorted(report["notes"]) == sorted([ann, bob])
    assert report["address_too_long"] == ["Bob Stone"]
    assert (
        "warning: address too long for a label (44 lines, a label holds 7), so no label: "
        "Bob Stone" in stderr
    )
    labels = pdf_text(Path(report["labels_pdf"]))
    assert "Ann Lee" in labels
    assert "Bob Stone" not in labels
    assert "Bob" in pdf_text(Path(report["cards_pdf"]), 2)


@needs_pdf
def test_labels_fill_sheets_of_24(shop: Any) -> None:
    workspace, engine = shop
    rows = [
        [f"L-{n}", f"Person {n:02d}", "", "", f"{n} Long Road", "", "Leeds", "LS1 1AA", "", ""]
        for n in range(30)
    ]
    import_customers(workspace, rows)
    for n in range(30):
        add_note(engine, f"L-{n}", "card")
    out = workspace.folder / "print"
    code, stdout, stderr = cli(
        workspace, "cards", "--out", out, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 0, stderr
    report = json.loads(stdout)
    assert len(report["notes"]) == 30
    labels = Path(report["labels_pdf"])
    assert int(pdf_info(labels)["Pages"]) == 2
    assert page_size(pdf_info(labels)) == A4_POINTS
    assert "Person 00" in pdf_text(labels, 1)
    assert "Person 23" in pdf_text(labels, 1)
    assert "Person 24" in pdf_text(labels, 2)
    assert "Person 29" in pdf_text(labels, 2)


@needs_pdf
def test_a_broken_card_template_fails_that_card_only_with_file_and_line(shop: Any) -> None:
    workspace, engine = shop
    (workspace.folder / "templates" / "card.anniversary.j2").write_text(
        "{% block inside %}\n<p>{{ customer.no_such_thing }}</p>\n{% endblock %}\n",
        encoding="utf-8",
    )
    ann = add_note(engine, "C-1", "card")
    bob = add_note(engine, "C-2", "card", kind="anniversary")
    out = workspace.folder / "print"
    code, stdout, stderr = cli(
        workspace, "cards", "--out", out, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 2
    assert json.loads(stdout)["notes"] == [ann]
    assert f"card {bob} (Bob Stone): card.anniversary.j2:2" in stderr
    assert state(engine, bob)["status"] == "pending"
    assert state(engine, ann)["status"] == "printed"


def test_a_card_template_that_runs_out_of_time_is_given_up_after_three_cards(shop: Any) -> None:
    """Each card waited out the whole render_timeout: a day of 300 cards took ten minutes
    at the default 2 s. After three, the rest fail at once, saying why; none is marked."""
    workspace, engine = shop
    config = workspace.path.read_text(encoding="utf-8")
    workspace.path.write_text(config + '\n[templates]\nrender_timeout = "1s"\n', "utf-8")
    (workspace.folder / "templates" / "card.birthday.j2").write_text(
        "{% block inside %}\n{% macro m(n) %}{% for i in [1, 2, 3, 4, 5, 6, 7, 8, 9] %}"
        "{{ m(n - 1) if n else '' }}{% endfor %}{% endmacro %}{{ m(9) }}\n{% endblock %}\n",
        encoding="utf-8",
    )
    import_customers(workspace, [[f"C-{n}", f"Guest {n}", "", "", *ADDRESS] for n in range(4, 7)])
    notes = [add_note(engine, f"C-{n}", "card") for n in range(1, 7)]
    out = workspace.folder / "print"
    code, stdout, stderr = cli(workspace, "cards", "--out", out, "--now", NOW.isoformat())
    assert code == 2, stdout
    said = [line for line in stderr.splitlines() if line.startswith("warning: card ")]
    assert len(said) == 6
    assert all("took longer than 1 s" in line for line in said[:3])
    assert all(
        "card.birthday.j2: not written, as it ran out of time on 3 cards already" in line
        for line in said[3:]
    )
    assert {state(engine, note)["status"] for note in notes} == {"pending"}


def test_an_unprinted_card_past_its_lateness_expires(shop: Any) -> None:
    workspace, engine = shop
    old = add_note(
        engine, "C-1", "card", due=NOW - timedelta(days=20), expires=NOW - timedelta(days=1)
    )
    out = workspace.folder / "print"
    code, stdout, _ = cli(workspace, "cards", "--out", out, "--now", NOW.isoformat(), "-f", "json")
    assert code == 0
    assert json.loads(stdout)["expired"] == 1
    assert state(engine, old)["status"] == "expired"


# Calls --------------------------------------------------------------------------------------


def test_the_call_list_shows_phone_and_what_to_say_and_done_is_a_sent_note(shop: Any) -> None:
    workspace, engine = shop
    call = add_note(engine, "C-1", "call")
    tomorrow = add_note(engine, "C-2", "call", kind="anniversary", due=NOW + timedelta(days=1))
    code, stdout, stderr = cli(
        workspace, "calls", "--date", DAY, "--now", NOW.isoformat(), "-f", "json"
    )
    assert code == 0, stderr
    [listed] = json.loads(stdout)
    assert (listed["id"], listed["customer"], listed["phone"]) == (
        call,
        "Ann Lee",
        "+44 20 7946 0001",
    )
    assert listed["script"] == "Wish Ann a happy birthday."
    code, stdout, _ = cli(workspace, "calls", "--now", NOW.isoformat())
    assert code == 0
    assert "Ann Lee" in stdout
    assert "+44 20 7946 0001" in stdout

    done_at = NOW + timedelta(hours=2)
    code, stdout, stderr = cli(
        workspace,
        "calls",
        "done",
        str(call),
        "--note",
        "left a message",
        "--now",
        done_at.isoformat(),
    )
    assert code == 0, stderr
    assert stdout.strip() == f"1 call recorded as made: {call}"
    made = state(engine, call)
    assert (made["status"], made["channel"], made["sent_at"]) == ("sent", "call", done_at)
    assert made["reason"] == "left a message"
    code, stdout, _ = cli(workspace, "calls", "--now", done_at.isoformat(), "-f", "json")
    assert json.loads(stdout) == []
    code, stdout, _ = cli(workspace, "log", "--status", "sent", "-f", "json")
    [logged] = json.loads(stdout)
    assert (logged["id"], logged["channel"], logged["reason"]) == (call, "call", "left a message")
    code, stdout, _ = cli(workspace, "show", str(call))
    assert "channel: call" in stdout
    assert "sent: left a message" in stdout
    # done twice, or for a note that is not a waiting call: refused, nothing marked
    code, _, stderr = cli(workspace, "calls", "done", str(call), str(tomorrow))
    assert code == 2
    assert f"not calls waiting to be made: {call}" in stderr
    assert state(engine, tomorrow)["status"] == "pending"


def test_a_call_not_made_in_time_expires(shop: Any) -> None:
    workspace, engine = shop
    late = add_note(
        engine, "C-1", "call", due=NOW - timedelta(days=9), expires=NOW - timedelta(days=2)
    )
    code, stdout, _ = cli(workspace, "calls", "--now", NOW.isoformat(), "-f", "csv")
    assert code == 0
    assert stdout.splitlines()[0].startswith("id,customer,customer_id,phone")
    assert len(stdout.splitlines()) == 1
    assert state(engine, late)["status"] == "expired"


def test_status_and_the_nightly_summary_say_what_waits_for_the_owners_hand(shop: Any) -> None:
    workspace, engine = shop
    add_note(engine, "C-1", "card")
    add_note(engine, "C-2", "card", kind="anniversary")
    call = add_note(engine, "C-3", "call")
    code, stdout, stderr = cli(workspace, "status")
    assert code == 0, stderr
    assert (
        "Waiting for you: 1 call to make (appreciate calls), 2 cards to print (appreciate cards)"
        in stdout
    )
    with engine.connect() as connection:
        assert "2 cards to print (appreciate cards)" in daily_summary(connection, NOW)
    assert cli(workspace, "calls", "done", str(call), "--now", NOW.isoformat())[0] == 0
    code, stdout, _ = cli(workspace, "status", "--format", "json")
    assert json.loads(stdout)["by_hand"] == {"card": 2}


def test_cards_and_calls_whose_time_passed_expire_at_the_services_next_tick(shop: Any) -> None:
    """The owner never opens `appreciate cards` or `calls`: the service's detection expires
    what is too late, so status and the nightly summary count only what can still be done."""
    workspace, engine = shop
    late_card = add_note(
        engine, "C-1", "card", due=NOW - timedelta(days=20), expires=NOW - timedelta(days=1)
    )
    late_call = add_note(
        engine, "C-3", "call", due=NOW - timedelta(days=9), expires=NOW - timedelta(hours=2)
    )
    card = add_note(engine, "C-2", "card", kind="anniversary")
    code, stdout, _ = cli(workspace, "status")
    assert "Waiting for you: 1 call to make (appreciate calls), 2 cards to print" in stdout
    code, stdout, stderr = cli(workspace, "detect", "--now", NOW.isoformat())
    assert code == 0, stderr
    assert "Expired: 1 card not printed in time, 1 call not made in time." in stdout
    assert state(engine, late_card)["status"] == "expired"
    assert state(engine, late_card)["reason"] == "the card was not printed in time"
    assert state(engine, late_call)["reason"] == "the call was not made in time"
    assert state(engine, card)["status"] == "pending"
    code, stdout, _ = cli(workspace, "status", "--format", "json")
    assert json.loads(stdout)["by_hand"] == {"card": 1}
    with engine.connect() as connection:
        assert "1 card to print (appreciate cards)" in daily_summary(connection, NOW)
    code, stdout, _ = cli(workspace, "log", "--status", "expired", "-f", "json")
    assert {row["id"] for row in json.loads(stdout)} == {late_card, late_call}


def test_the_plan_counts_the_days_cards_and_calls_for_the_owners_hand(shop: Any) -> None:
    """`plan` lists what the service sends; what waits for the owner's hand that day (due by
    its end, not too late) is counted beside it, in the table and in JSON."""
    workspace, engine = shop
    add_note(engine, "C-1", "card")
    add_note(engine, "C-3", "call", due=NOW + timedelta(days=1))
    add_note(
        engine,
        "C-2",
        "card",
        kind="anniversary",
        due=NOW - timedelta(days=9),
        expires=NOW - timedelta(hours=1),
    )  # too late: expires in the plan's run
    code, stdout, stderr = cli(workspace, "plan", "--now", NOW.isoformat(), "-f", "json")
    assert code == 0, stderr
    today = json.loads(stdout)
    assert today["by_hand"] == {"card": 1}
    assert [(n["customer"], n["status"]) for n in today["notes"]] == [("C-2", "expired")]
    tomorrow = (NOW + timedelta(days=1)).date().isoformat()
    code, stdout, _ = cli(workspace, "plan", "--date", tomorrow, "--now", NOW.isoformat())
    assert code == 0
    assert (
        "Waiting for you: 1 call to make (appreciate calls), 1 card to print (appreciate cards)."
        in stdout
    )
    code, stdout, _ = cli(workspace, "status", "-f", "json")
    assert json.loads(stdout)["by_hand"] == {"call": 1, "card": 2}  # the plan wrote nothing


def test_a_day_with_no_cards_or_calls_says_so(shop: Any) -> None:
    workspace, _ = shop
    code, stdout, stderr = cli(workspace, "cards", "--date", DAY, "--now", NOW.isoformat())
    assert code == 0, stderr
    assert f"No cards to print for {DAY}." in stdout
    code, stdout, stderr = cli(workspace, "calls", "--date", DAY, "--now", NOW.isoformat())
    assert code == 0, stderr
    assert f"No calls to make for {DAY}." in stdout
