"""The story a shop owner sees, through the commands and a real SMTP server: an order is
thanked, two weeks later the follow-up asks for a review, the customer writes one, and the
review is thanked (once, however often the reviews are imported), asking for nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import CliResult, Workspace, run_cli
from tests.smtp_servers import Received, Recorder, running

STARTERS = Path(__file__).parent.parent / "templates"
REVIEW_URL = "https://g.page/r/ada-bakery/review"


def body(received: Received) -> str:
    text = received.message.get_body(("plain",))
    assert text is not None
    content: str = text.get_content()
    return content


class Shop:
    def __init__(self, workspace: Workspace, tmp_path: Path) -> None:
        self.workspace = workspace
        self.tmp_path = tmp_path

    def cli(self, *args: str | Path) -> CliResult:
        return run_cli("--config", self.workspace.path, *args)

    def run_once(self, at: str) -> dict[str, Any]:
        done = self.cli("run", "--once", "--now", at, "--format", "json")
        assert done.exit_code == 0, done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def import_file(self, kind: str, text: str, at: str) -> dict[str, Any]:
        path = self.tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        done = self.cli("import", kind, path, "--now", at, "--format", "json")
        assert done.exit_code == 0, done.stdout + done.stderr
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    def log(self, *args: str) -> list[dict[str, Any]]:
        done = self.cli("log", "--format", "json", *args)
        assert done.exit_code == 0, done.stderr
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows


def test_an_order_its_follow_up_then_a_review_thanked_once(
    migrated_workspace: Workspace, tmp_path: Path
) -> None:
    shutil.copytree(STARTERS, migrated_workspace.folder / "templates")
    with migrated_workspace.path.open("a", encoding="utf-8") as config:
        config.write(f'review_url = "{REVIEW_URL}"\n')
    shop = Shop(migrated_workspace, tmp_path)
    recorder = Recorder()
    with running(recorder) as port:
        with migrated_workspace.path.open("a", encoding="utf-8") as config:
            config.write(f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\n')
        shop.run_once("2027-06-01T07:00:00Z")  # the service starts watching
        shop.import_file(
            "customers", "id,name,email\nC-1,Ann Lee,ann@example.com\n", "2027-06-01T07:30:00Z"
        )
        shop.import_file(
            "orders",
            "id,customer_id,placed_at,amount,description\nA-1,C-1,2027-06-01T09:00,42.50,a cake\n",
            "2027-06-01T08:05:00Z",
        )
        assert shop.run_once("2027-06-01T11:00:00Z")["outcomes"] == {"sent": 1}  # the thanks

        # two weeks later, the follow-up asks how it went, and for a review
        assert shop.run_once("2027-06-15T10:00:00Z")["outcomes"] == {"sent": 1}
        follow_up = recorder.received[-1]
        assert follow_up.message["Subject"] == "How is everything going, Ann?"
        assert REVIEW_URL in body(follow_up)

        # that evening Ann writes a review; the next morning the shop imports it
        reviews = (
            "customer_id,reviewed_at,where,rating,text\n"
            'C-1,2027-06-15T19:10+01:00,Google,5,"The cake was perfect, thank you!"\n'
        )
        report = shop.import_file("reviews", reviews, "2027-06-16T07:00:00Z")
        assert report["inserted"] == 1
        shop.run_once("2027-06-16T10:00:00Z")
        [waiting] = shop.log("--kind", "review_thanks")
        assert waiting["status"] == "deferred"  # one note a week: the follow-up was yesterday
        assert waiting["reason"].startswith("deferred: one note per 7 days")
        assert len(recorder.received) == 2

        # the same export again, the next day: still one review, one note
        again = shop.import_file("reviews", reviews, "2027-06-17T07:00:00Z")
        assert (again["inserted"], again["unchanged"]) == (0, 1)
        assert shop.run_once("2027-06-22T10:00:00Z")["outcomes"] == {"sent": 1}
        thanks = recorder.received[-1]
        shop.import_file("reviews", reviews, "2027-06-23T07:00:00Z")
        shop.run_once("2027-06-23T10:00:00Z")
    assert len(recorder.received) == 3
    [sent] = shop.log("--kind", "review_thanks")
    assert sent["status"] == "sent"
    assert sent["occasion_key"].startswith("review_thanks:auto-")

    assert thanks.rcpt_tos == ["ann@example.com"]
    assert thanks.message["Subject"] == "Thank you for your kind words, Ann"
    words = body(thanks)
    assert "on Google" in words
    assert '"The cake was perfect, thank you!"' in words
    note = words.split("Rather not get notes")[0].lower()
    assert REVIEW_URL not in note
    for asking in ("review_url", "g.page", "would you", "please", "?", "discount", "% off"):
        assert asking not in note, asking
    html = thanks.message.get_body(("html",))
    assert html is not None
    assert "<a " not in html.get_content().split("Rather not get notes")[0]

    kinds = [row["kind"] for row in shop.log()]
    assert sorted(kinds) == ["follow_up", "order_thanks", "review_thanks"]
    status = shop.cli("status", "--format", "json")
    assert json.loads(status.stdout)["queue"] == {"sent": 3}
