"""Benchmark: reading the words of an HTML-only reply, appreciate's reader (lxml) against
Python's HTMLParser (what appreciate used before), on markup that never closes and on a real
reply.

Each case is a `text/html` part of about `--size` characters (default 24,000; a part is read
up to 262,144): a line of words, then one piece of markup repeated. The HTMLParser way is what
appreciate did before: an `HTMLParser` subclass fed the whole part. Prints the median of
`--repeat` runs of each way and their ratio. HTMLParser's time grows with the square of the
size on such markup, so keep `--size` small for it (24,000 characters of `<a ` take several
seconds); `--skip-htmlparser` times appreciate's reader alone, at any size.

    python bench/html_replies.py
    python bench/html_replies.py --size 262144 --skip-htmlparser
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler.inbound.html_text import html_text

CASES = {
    "<a + space": "<a ",
    "<a": "<a",
    "<!--x": "<!--x",
    "<x title='": "<x title='",
    "long tag name": "<" + "a" * 1000,
    "<div> nested": "<div>",
    "<b> nested": "<b>",
    "real reply": (
        "<div><p class=MsoNormal>Thank you &amp; see you soon,<o:p></o:p></p>"
        "<blockquote style='margin:0 0 0 .8ex'><p>On Monday you wrote:</p></blockquote></div>"
    ),
}


class _Words(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []

    def handle_data(self, data: str) -> None:
        self.chunks.append(data)


def with_htmlparser(html: str) -> str:
    parser = _Words()
    parser.feed(html)
    parser.close()
    return "".join(parser.chunks)


def median_seconds(read: Callable[[str], str], html: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        read(html)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=24_000, help="characters a part (24,000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each way (3)")
    parser.add_argument("--skip-htmlparser", action="store_true", help="time appreciate only")
    options = parser.parse_args()
    print(f"{options.size:,} characters a part, median of {options.repeat} runs")
    for name, piece in CASES.items():
        html = "<p>Please stop sending these.</p>" + piece * (options.size // len(piece))
        ours = median_seconds(html_text, html, options.repeat)
        line = f"  {name:<14} appreciate {ours * 1000:9.1f} ms"
        if not options.skip_htmlparser:
            theirs = median_seconds(with_htmlparser, html, options.repeat)
            line += f"   HTMLParser {theirs * 1000:9.1f} ms   {theirs / ours:8.1f}x faster"
        print(line, flush=True)


if __name__ == "__main__":
    main()
