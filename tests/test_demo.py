"""`appreciate demo` as a newcomer sees it: the whole product, end to end, in one folder."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from scheduler.config.file import load_config
from scheduler.store.db import create_store_engine
from scheduler.store.models import metadata
from tests.conftest import CliResult, run_cli

touches = metadata.tables["touches"]
customers = metadata.tables["customers"]
customer_values = metadata.tables["customer_values"]

NOWS = (
    "2026-11-28T12:00:00Z",  # Kiritimati (UTC+14) is already on the 29th
    "2027-02-28T23:30:00Z",  # half an hour before the business's day ends; Asia on 1 March
)


@dataclass
class DemoRun:
    now: datetime
    result: CliResult
    workspace: Path
    outside_before: dict[str, tuple[int, int]]
    outside_after: dict[str, tuple[int, int]]
    notes: list[Any]
    """Every touch with its customer's email, zone, opt-out and lifetime value."""

    @property
    def business_zone(self) -> str:
        return load_config(self.workspace / "appreciate.toml").settings.business.timezone

    def status(self, status: str) -> list[Any]:
        return [note for note in self.notes if note.status == status]

    def sent(self, kind: str) -> list[Any]:
        return [note for note in self.status("sent") if note.kind == kind]


def _listing(base: Path, workspace: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `base` but the workspace: size and modification time."""
    return {
        str(path.relative_to(base)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in base.rglob("*")
        if path != workspace and workspace not in path.parents
    }


def _notes(workspace: Path) -> list[Any]:
    engine = create_store_engine(f"sqlite:///{workspace / 'appreciate.db'}")
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    select(
                        touches.c.id,
                        touches.c.kind,
                        touches.c.status,
                        touches.c.reason,
                        touches.c.due_at,
                        touches.c.planned_at,
                        touches.c.expires_at,
                        touches.c.message_id,
                        customers.c.external_id,
                        customers.c.email,
                        customers.c.timezone,
                        customers.c.opted_out_at,
                        func.coalesce(customer_values.c.total, Decimal(0)).label("value"),
                    )
                    .join(customers, customers.c.id == touches.c.customer_id)
                    .outerjoin(
                        customer_values, customer_values.c.customer_id == touches.c.customer_id
                    )
                    .order_by(touches.c.id)
                )
            )
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=NOWS)
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """The demo run once per moment, from a working folder of its own, with a HOME of its own
    and a neighbour file beside the workspace (to see that nothing else is written)."""
    base = tmp_path_factory.mktemp("demo")
    workspace = base / "workspace"
    (base / "cwd").mkdir()
    (base / "home").mkdir()
    (base / "neighbour.txt").write_text("leave me alone\n", encoding="utf-8")
    before = _listing(base, workspace)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(base / "cwd")
        result = run_cli(
            "demo", "--now", request.param, "--dir", workspace, env={"HOME": str(base / "home")}
        )
    return DemoRun(
        now=datetime.fromisoformat(request.param),
        result=result,
        workspace=workspace,
        outside_before=before,
        outside_after=_listing(base, workspace),
        notes=_notes(workspace) if result.exit_code == 0 else [],
    )


def test_the_demo_runs_a_whole_cycle_and_exits_0(demo: DemoRun) -> None:
    assert demo.result.exit_code == 0, demo.result.stderr
    out = demo.result.stdout
    assert f"Demo workspace: {demo.workspace}" in out
    # the import report, with the rows that are bad on purpose
    assert "is not a real calendar date" in out
    assert "a customer cannot refer themselves" in out
    assert 'customer_id: no customer with id "C-404"' in out
    # the sent-log, with the reasons for what was not sent
    assert "The sent-log" in out
    assert "opted out on" in out
    assert "planned for 20" in out  # the note the budget moved to a later day
    # where the mail is, and what to try next
    assert str(demo.workspace / "mail" / "new") in out
    config = demo.workspace / "appreciate.toml"
    assert f"appreciate --config {config} log" in out
    assert f"appreciate --config {config} show " in out
    assert f"appreciate --config {config} preview birthday --customer C-" in out


def test_every_sent_note_is_an_eml_file_addressed_to_its_customer(demo: DemoRun) -> None:
    files = sorted((demo.workspace / "mail" / "new").glob("*.eml"))
    sent = demo.status("sent")
    assert len(files) == len(sent) > 0
    messages = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in files]
    recipients = Counter(message["To"].addresses[0].addr_spec for message in messages)
    assert recipients == Counter(note.email for note in sent)
    assert {message["Message-ID"] for message in messages} == {note.message_id for note in sent}
    assert f"The sink received {len(files)} messages" in demo.result.stdout


def test_birthdays_in_several_zones_order_referral_and_meeting_notes_are_sent(
    demo: DemoRun,
) -> None:
    business = demo.business_zone
    zones = {note.timezone or business for note in demo.sent("birthday")}
    assert len(zones) >= 3
    business_today = demo.now.astimezone(ZoneInfo(business)).date()
    assert any(demo.now.astimezone(ZoneInfo(zone)).date() != business_today for zone in zones)
    assert demo.sent("order_thanks")
    assert len(demo.sent("referral_thanks")) == 1
    assert len(demo.sent("first_meeting")) == 1
    assert [note.external_id for note in demo.sent("review_thanks")] == ["C-020"]
    for kind in ("birthday", "order_thanks", "referral_thanks", "review_thanks", "first_meeting"):
        assert kind in demo.result.stdout
    assert "Happy birthday" in demo.result.stdout


def test_the_opted_out_customer_is_suppressed(demo: DemoRun) -> None:
    opted_out = [note for note in demo.notes if note.opted_out_at is not None]
    assert opted_out
    assert all(note.status == "suppressed" for note in opted_out)
    assert all(note.reason.startswith("opted out on") for note in opted_out)
    assert all(note.status != "suppressed" for note in demo.notes if note.opted_out_at is None)


def test_the_daily_budget_defers_the_least_valuable_due_customer_only(demo: DemoRun) -> None:
    deferred = demo.status("deferred")
    assert len(deferred) == 1
    [waiting] = deferred
    assert "budget" in waiting.reason
    business = ZoneInfo(demo.business_zone)
    assert waiting.planned_at.astimezone(business).date() > demo.now.astimezone(business).date()
    assert waiting.planned_at <= waiting.expires_at  # it still goes in time
    sent = demo.status("sent")
    assert all(waiting.value < note.value for note in sent)
    budget = load_config(demo.workspace / "appreciate.toml").settings.schedule.daily_budget
    assert len(sent) == budget
    assert {note.status for note in demo.notes} == {"sent", "suppressed", "deferred"}


def test_nothing_is_written_outside_the_workspace(demo: DemoRun) -> None:
    assert demo.outside_after == demo.outside_before


def test_the_demo_refuses_a_folder_that_holds_files(tmp_path: Path) -> None:
    (tmp_path / "appreciate.toml").write_text("# mine\n", encoding="utf-8")
    result = run_cli("demo", "--dir", tmp_path, "--now", NOWS[0])
    assert result.exit_code == 2
    assert "not an empty folder" in result.stderr
    assert (tmp_path / "appreciate.toml").read_text(encoding="utf-8") == "# mine\n"


def test_without_dir_the_demo_makes_a_new_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run_cli("demo", "--now", NOWS[0])
    assert result.exit_code == 0, result.stderr
    [folder] = tmp_path.glob("appreciate-demo-*")
    assert f"Demo workspace: {folder}" in result.stdout
    assert (folder / "appreciate.toml").is_file()
