"""Chat-export parser benchmark: detect + parse of a generated 1,000,000-message export.

One Android and one iOS export are written to a temp folder (37 s between messages, four
authors including `Bob - Work` and `~{NNBSP}Carol`, a three-line message every 7th, a media
placeholder every 50th, emoji in the bodies, CRLF on iOS). For each:

- ours: imports.parsing detect() then parse(), every Entry built: lines/s over both passes,
  and the peak memory they allocate (tracemalloc, measured in a separate run because tracing
  slows the parser down several times);
- ceiling: the same file read line by line with the header regex matched on each line and
  nothing else (`for line in file: DATE_FIRST.match(line)`), the least any line-based parser
  in Python can do.

The contract's target is 200,000 lines/s. Nothing asserts on speed; the entry count is checked.
BENCH_IMPORT_MESSAGES (default 1,000,000) sets the size.
"""

import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from imports.parsing import ExportFile, detect, parse
from imports.parsing.headers import DATE_FIRST
from tests.performance.conftest import Figure, rate, record, say, table

MESSAGES = int(os.environ.get("BENCH_IMPORT_MESSAGES", "1000000"))
TARGET = 200_000
T = TypeVar("T")
AUTHORS = ["Alice", "Bob - Work", "~\u202fCarol", "+44 7700 900123"]


def write_export(path: Path, platform: str, count: int) -> None:
    when = datetime(2021, 1, 13, 8, 0, 0)  # day 13 first: the date order is decided at once
    end = "\r\n" if platform == "ios" else "\n"
    with path.open("w", encoding="utf-8", newline="") as out:
        for n in range(count):
            when += timedelta(seconds=37)
            author = AUTHORS[n % len(AUTHORS)]
            body = "Sounds good, see you at 10: bring the notes 👍"
            if n % 7 == 0:
                body = f"Line one{end}line two: more{end}line three"
            if n % 50 == 0:
                body = "\u200eimage omitted" if platform == "ios" else "<Media omitted>"
            if platform == "ios":
                out.write(f"[{when:%d/%m/%Y}, {when:%H:%M:%S}] {author}: {body}{end}")
            else:
                out.write(f"{when:%d/%m/%Y}, {when:%H:%M} - {author}: {body}{end}")


@pytest.fixture(scope="module")
def exports() -> Iterator[dict[str, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        paths = {}
        for platform in ("android", "ios"):
            paths[platform] = Path(folder) / f"{platform}.txt"
            write_export(paths[platform], platform, MESSAGES)
        yield paths


def detect_and_parse(path: Path) -> tuple[int, int]:
    with ExportFile.open(path, path.name) as export:
        detected = detect(export)
        assert detected.date_order is not None
        entries = sum(1 for _ in parse(export, detected, detected.date_order))
    return detected.lines, entries


def ceiling(path: Path) -> int:
    match = DATE_FIRST.match
    lines = 0
    with path.open(encoding="utf-8") as source:
        for line in source:
            match(line)
            lines += 1
    return lines


def timed(work: Callable[[Path], T], path: Path) -> tuple[float, T]:
    started = time.perf_counter()
    result = work(path)
    return time.perf_counter() - started, result


@pytest.mark.parametrize("platform", ["android", "ios"])
def test_bench_import_parse(exports: dict[str, Path], platform: str) -> None:
    path = exports[platform]
    ours_seconds, (lines, entries) = timed(detect_and_parse, path)
    assert entries == MESSAGES
    bare_seconds, _ = timed(ceiling, path)
    tracemalloc.start()
    detect_and_parse(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    ours, bare = lines / ours_seconds, lines / bare_seconds
    size = path.stat().st_size / 2**20
    peak_text = f"{peak / 2**20:.1f} MiB"
    rows = [
        ["detect + parse", f"{lines:,}", f"{ours_seconds:.2f}", rate(ours), peak_text],
        ["ceiling: read + regex", f"{lines:,}", f"{bare_seconds:.2f}", rate(bare), "-"],
    ]
    title = f"== chat-export parser, {platform}, {MESSAGES:,} messages, {size:.0f} MiB"
    say(table(["", "lines", "seconds", "lines/s", "peak memory"], rows, title=title))
    record(
        Figure(
            f"chat-export detect+parse, {platform} (lines/s)",
            ours,
            "lines/s",
            ceiling=bare,
            ceiling_label="read + header regex",
            target=TARGET,
        )
    )
