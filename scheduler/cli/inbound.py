"""`appreciate inbound`: read one message that came back (a bounce, a complaint, a reply) from
a file or standard input, for mail servers that deliver to a command; and `appreciate inbound
list`, what came back and what was done with it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from typer.core import TyperGroup

from scheduler.cli.common import (
    FormatOption,
    NowOption,
    cli_state,
    err,
    one_of,
    opened_store,
    out,
    parse_now,
    short_time,
)
from scheduler.errors import AppreciateError
from scheduler.output import OutputFormat, counted, printable, table, to_csv, to_json
from scheduler.vocabulary import INBOUND_KINDS, MAX_ID

EX_TEMPFAIL = 75
"""sysexits.h: try again later. A mail server keeps the message queued and delivers it again."""
EX_DATAERR = 65
"""sysexits.h: the input is wrong. A mail server bounces the message (it would never do)."""
LARGEST_MESSAGE = 64 * 1024 * 1024
"""Bytes of one message read at most: far beyond any mail server's size limit (Postfix's is
10 MB), so only a mistake (`inbound /dev/zero`, a runaway pipe) reaches it."""
LIST_COLUMNS = (
    "id",
    "received_at",
    "kind",
    "seen_as",
    "note",
    "customer_id",
    "sender",
    "subject",
    "detail",
)


class ReadByDefault(TyperGroup):
    """`appreciate inbound FILE`, `appreciate inbound --now ...` and a bare `appreciate
    inbound` (standard input) mean `appreciate inbound read ...`; `list` and `--help` keep
    their meaning."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] != "--help"):
            args = ["read", *args]
        return super().parse_args(ctx, args)


inbound_app = typer.Typer(
    cls=ReadByDefault,
    help=(
        "What comes back: bounces, spam complaints, replies and emailed opt-outs. "
        "`appreciate inbound [FILE|-]` reads one message (for a mail server that delivers to "
        "a command); `appreciate inbound list` shows what came back."
    ),
)


@inbound_app.command("read")
def read(
    ctx: typer.Context,
    source: Annotated[
        str,
        typer.Argument(
            metavar="[FILE|-]", help="A file holding one raw message; - or nothing: stdin."
        ),
    ] = "-",
    now: NowOption = None,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """Record one raw message (RFC 5322), match it to the note it answers, and act on it.

    A permanent bounce marks the note bounced and stops notes to that address; a complaint or an
    emailed opt-out opts the customer out; a reply is noted on the note. Reading the same
    message again changes nothing. Exits 0 once the message is recorded (also when nothing
    matched: it is kept as unmatched), and 75 (EX_TEMPFAIL) when it could not be recorded, so
    a mail server keeps it and delivers it again. For Postfix, in master.cf or aliases:
    `bounces: "|/usr/bin/appreciate --config /etc/appreciate/appreciate.toml inbound"`.
    """
    try:
        raw = _raw_message(source)
    except TooLarge as error:
        err.print(f"error: not recorded: {printable(str(error))}", markup=False)
        raise typer.Exit(EX_DATAERR) from None
    except OSError as error:
        err.print(f"error: {source}: {printable(error.strerror or str(error))}", markup=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    if raw is None:
        err.print("error: standard input is closed", markup=False)
        raise typer.Exit(EX_TEMPFAIL)
    try:
        recorded = _record(ctx, raw, parse_now(now))
    except (AppreciateError, OSError) as error:
        err.print(f"error: not recorded, try again later: {printable(str(error))}", markup=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    except Exception as error:
        from scheduler.store.db import store_failure

        reason = store_failure(error)
        if reason is None:
            raise
        err.print(f"error: not recorded, the store: {printable(reason)}", markup=False)
        raise typer.Exit(EX_TEMPFAIL) from None
    if output_format is OutputFormat.json:
        out.file.write(to_json(recorded) + "\n")
        return
    if output_format is OutputFormat.csv:
        out.file.write(to_csv([recorded], list(recorded)))
        return
    about = f" (note {recorded['note']})" if recorded["note"] else ""
    out.print(printable(f"{recorded['kind']}{about}: {recorded['detail']}"), markup=False)


class TooLarge(ValueError):
    """A message over LARGEST_MESSAGE bytes, or a source that never ends."""


def _raw_message(source: str) -> bytes | None:
    """The bytes of the file `source`, or of standard input for `-`; None when standard input
    is closed (the command was started with no input at all: the mail server must try again
    once that is fixed). Raises TooLarge beyond LARGEST_MESSAGE bytes (read no further)."""
    if source != "-":
        with Path(source).open("rb") as file:
            return _at_most(file, source)
    return None if sys.stdin is None else _at_most(sys.stdin.buffer, "standard input")


def _at_most(stream: BinaryIO, name: str) -> bytes:
    data = stream.read(LARGEST_MESSAGE + 1)
    if len(data) > LARGEST_MESSAGE:
        raise TooLarge(
            f"{name} holds more than {LARGEST_MESSAGE // (1024 * 1024)} MiB, far more than a "
            "message that comes back"
        )
    return data


def _record(ctx: typer.Context, raw: bytes, now: Any) -> dict[str, Any]:
    from scheduler.inbound.record import InboundRules, record_message

    config = cli_state(ctx).config()
    with opened_store(config) as engine:
        done = record_message(engine, raw, InboundRules.of(config.settings), now)
    return {
        "kind": done.kind,
        "seen_as": done.seen_as,
        "note": done.touch_id,
        "inbound_id": done.inbound_id,
        "notes_suppressed": done.notes_suppressed,
        "detail": done.detail,
    }


@inbound_app.command("list")
def list_inbound(
    ctx: typer.Context,
    unmatched: Annotated[
        bool, typer.Option("--unmatched", help="Only what matched no note or could not be read.")
    ] = False,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind", callback=one_of(INBOUND_KINDS), help=f"Only this kind: {INBOUND_KINDS}."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=0, max=MAX_ID, help="At most this many (0: all).")
    ] = 50,
    output_format: FormatOption = OutputFormat.table,
) -> None:
    """What came back, newest first: what each message was, the note it answered, what was
    done. The table fits a narrow terminal; json and csv have every column."""
    from scheduler.inbound.listing import inbound_rows

    if unmatched and kind not in (None, "unmatched"):
        raise typer.BadParameter("give --unmatched or --kind, not both")
    config = cli_state(ctx).config()
    with opened_store(config) as engine, engine.connect() as connection:
        rows = inbound_rows(connection, "unmatched" if unmatched else kind, limit)
    if output_format is OutputFormat.json:
        out.file.write(to_json(rows) + "\n")
    elif output_format is OutputFormat.csv:
        out.file.write(to_csv(rows, list(LIST_COLUMNS)))
    else:
        for row in rows:
            row["when"] = short_time(row["received_at"])
        columns = ["id", "when", "kind", "note", "customer_id", "sender", "detail"]
        out.print(table(f"Inbound: {counted(len(rows), 'message')}", rows, columns))
