"""Chat-import benchmark (issue 18): parsing, and the end-to-end import through the path a user
runs (upload → analyse → confirm → run_import, as the worker's task calls it), beside
`ledger.append` of the same number of entries in the same run.

A generated Android export of BENCH_IMPORT_MESSAGES messages (default 1,000,000; one in ten
spans three lines, one in fifty is a media placeholder) in a three-person group. Figures:
- parse: detect + parse, lines/s (target ≥ 200,000/s);
- analyse: the preview pass the upload runs (a second full parse, nothing sealed);
- import: run_import alone, messages/s (target ≥ 5,000/s): parse + seal + index + retention;
- the ceiling: ledger.append of the same number of message-sized facts in batches of the same
  size, in the same run;
- peak memory: the process's maximum resident set size after the import (target < 300 MB).

The import's sessions run with synchronous_commit on (as `make run`); the throwaway cluster
`make bench` starts has fsync off cluster-wide (scripts/localdev.py), which a session cannot
change: the figures say so.
"""

import cProfile
import io
import os
import pstats
import resource
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection

from archive import ledger
from archive.envelope import Fact
from archive.verify import verify_ledger
from imports import pipeline
from imports.parsing import ExportFile, detect, parse
from messaging.models import Channel, ImportedMessage
from tests.performance.conftest import Figure, rate, record, say, seconds, table

MESSAGES = int(os.environ.get("BENCH_IMPORT_MESSAGES", "1000000"))
PROFILE = os.environ.get("BENCH_PROFILE", "") not in ("", "0")
AUTHORS = ("Loris", "Ann Example", "Bob Example")


def write_export(path: Path, messages: int) -> int:
    """An Android `dd/mm/yyyy, HH:MM - ` export; returns its line count."""
    start = datetime(2019, 1, 1, 8, 0)
    lines = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for n in range(messages):
            at = start + timedelta(minutes=n // 3)
            author = AUTHORS[n % 3]
            if n % 50 == 7:
                body = "<Media omitted>"
            elif n % 10 == 3:
                body = f"message {n} about the account\nsecond line\nthird line {n % 97}"
            else:
                body = f"message {n}: shall we move the meeting to {n % 24}:00 tomorrow?"
            out.write(f"{at:%d/%m/%Y, %H:%M} - {author}: {body}\n")
            lines += body.count("\n") + 1
    return lines


def parse_pass(path: Path) -> tuple[float, int]:
    began = time.perf_counter()
    with ExportFile.open(path, path.name) as export:
        detected = detect(export)
        count = sum(1 for _ in parse(export, detected, detected.date_order or "dmy"))
    return time.perf_counter() - began, count


def append_ceiling(count: int, batch: int) -> float:
    """ledger.append of `count` facts shaped like message.imported, `batch` per transaction."""
    fields = {
        "export": 1,
        "phone_number_id": "1001",
        "first_line": 1,
        "last_line": 1,
        "local_time": "2019-01-01T08:00:00",
        "sent_at": "2019-01-01T08:00:00.000000Z",
        "time_zone": "Europe/London",
        "parser_version": "1.0",
        "entry_kind": "text",
        "flags": "",
        "direction": "in",
        "same_as": None,
    }
    body = b"message 12345: shall we move the meeting to 9:00 tomorrow?"
    began = time.perf_counter()
    for first in range(0, count, batch):
        facts = [
            Fact("bench.import", {**fields, "first_line": first + i}, {"text": body})
            for i in range(min(batch, count - first))
        ]
        ledger.append(facts)
    return time.perf_counter() - began


def test_import(empty_ledger: None, server_settings: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = on")
    channel = Channel.objects.create(name="Bench", phone_number_id="1001")
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    path = folder / "WhatsApp Chat with Bench.txt"
    began = time.perf_counter()
    lines = write_export(path, MESSAGES)
    say(f"\n== chat import: {MESSAGES:,} messages, {lines:,} lines, {server_settings}")
    say(f"   generated in {seconds(time.perf_counter() - began)}, {path.stat().st_size:,} bytes")
    parse_time, parsed = parse_pass(path)
    assert parsed == MESSAGES

    began = time.perf_counter()
    with path.open("rb") as stream:
        job = pipeline.upload(
            channel=channel,
            custodian="Loris",
            time_zone="Europe/London",
            file_name=path.name,
            stream=stream,
            uploaded_by=None,
            inline=True,
        )
    upload_time = time.perf_counter() - began
    job = pipeline.confirm(
        job,
        date_order=job.preview["date_order"],
        mapping={},
        chat_name="Bench",
        one_to_one=False,
        user=None,
        queue=False,
    )
    profile = cProfile.Profile() if PROFILE else None
    began = time.perf_counter()
    if profile:
        profile.enable()
    job = pipeline.run_import(job.pk)  # what imports.tasks.import_task runs
    import_time = time.perf_counter() - began
    if profile:
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(35)
        say(out.getvalue())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert job.state == "done", job.error
    assert ImportedMessage.objects.count() == MESSAGES == job.counts["created"]

    ceiling_time = append_ceiling(MESSAGES, settings.CHAT_IMPORT_BATCH)
    report = verify_ledger(contents=False)
    assert report.intact, report.problems[:3]
    path.unlink()
    rows = [
        ["parse (detect + parse)", seconds(parse_time), rate(lines / parse_time) + " lines"],
        [
            "upload + analyse (store, seal, preview)",
            seconds(upload_time),
            rate(lines / upload_time) + " lines",
        ],
        [
            "run_import (parse + seal + index)",
            seconds(import_time),
            rate(MESSAGES / import_time) + " msgs",
        ],
        [
            "ledger.append, same count (ceiling)",
            seconds(ceiling_time),
            rate(MESSAGES / ceiling_time) + " entries",
        ],
        ["peak RSS of the process", f"{peak:,.0f} MiB", "-"],
    ]
    say(table(["step", "time", "rate"], rows, title="== chat import"))
    record(Figure("chat import: parse", lines / parse_time, "lines/s", target=200_000.0))
    record(
        Figure(
            f"chat import: {MESSAGES:,} msgs end to end",
            MESSAGES / import_time,
            "messages/s",
            MESSAGES / ceiling_time,
            "ledger.append same count",
            target=5_000.0,
        )
    )
