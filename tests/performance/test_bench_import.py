"""Chat-import benchmark (issue 18): parsing, and the end-to-end import through the path a user
runs (upload → analyse → confirm → run_import, as the worker's task calls it), beside
`ledger.append` of the same number of entries in the same run.

A generated Android export of BENCH_IMPORT_MESSAGES messages (default 1,000,000; one in ten
spans three lines, one in fifty is a media placeholder) in a three-person group. Figures:
- parse: detect + parse, lines/s (target ≥ 200,000/s);
- analyse: the preview pass the upload runs (a second full parse, nothing sealed);
- import: run_import alone, messages/s (target ≥ 5,000/s): parse + seal + index + retention;
- the ceilings, in the same run: ledger.append of the same number of message-sized facts in
  batches of the same size; the bare COPY of the same Message rows (read back from the import)
  into a table like messaging_message with all its indexes, and again without the GIN index on
  `search` (the difference is what indexing for search costs), and of the ImportedMessage rows;
- the chain-head hold: how long each batch holds the ledger's chain-head lock (from its
  ledger.append to its commit), which capture waits behind: median and longest;
- peak memory: the process's maximum resident set size after the import (target < 300 MB).

The import's sessions run with synchronous_commit on (as `make run`); the throwaway cluster
`make bench` starts has fsync off cluster-wide (scripts/localdev.py), which a session cannot
change: the figures say so. CLIENTWINDOW_THROWAWAY_DURABLE=1 starts it with fsync on instead.
"""

import cProfile
import io
import os
import pstats
import resource
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from psycopg import sql

from archive import ledger
from archive.envelope import Fact
from archive.verify import verify_ledger
from imports import pipeline, sealing
from imports.parsing import ExportFile, detect, parse
from messaging.models import Channel, ImportedMessage
from tests.conftest import superuser_connect
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
    """ledger.append of `count` facts shaped like message.imported (the same fields, and the
    same three committed contents: author, text, custodian), `batch` per transaction."""
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
    contents = {
        "author": b"Ann Example",
        "text": b"message 12345: shall we move the meeting to 9:00 tomorrow?",
        "custodian": b"Loris",
    }
    began = time.perf_counter()
    for first in range(0, count, batch):
        facts = [
            Fact("bench.import", {**fields, "first_line": first + i}, contents)
            for i in range(min(batch, count - first))
        ]
        ledger.append(facts)
    return time.perf_counter() - began


@contextmanager
def chain_head_holds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Each batch's hold of the chain-head lock: from its first ledger.append (which takes the
    lock; the salts it computes first are counted too) to the return of seal_batch (its
    commit). Timing wrappers only: run_import runs as the worker calls it."""
    holds: list[float] = []
    locked: list[float] = []
    real_append, real_batch = ledger.append, sealing.seal_batch

    def append(facts: Any, **kwargs: Any) -> Any:
        if connection.in_atomic_block and not locked:
            locked.append(time.perf_counter())
        return real_append(facts, **kwargs)

    def seal_batch(state: Any, batch: Any) -> None:
        locked.clear()
        real_batch(state, batch)
        holds.append(time.perf_counter() - locked[0])

    monkeypatch.setattr(ledger, "append", append)
    monkeypatch.setattr(sealing, "seal_batch", seal_batch)
    yield holds
    monkeypatch.setattr(ledger, "append", real_append)
    monkeypatch.setattr(sealing, "seal_batch", real_batch)


COPY_TABLES = {
    "bench_message": ("messaging_message", True),  # every index, the GIN one included
    "bench_message_nogin": ("messaging_message", False),
    "bench_imported": ("messaging_importedmessage", True),
}


def copy_ceilings(batch: int) -> dict[str, float]:
    """The bare COPY of the rows the import wrote, `batch` rows per committed transaction, into
    plain tables like the real ones (columns, defaults, generated `search`, indexes; no
    triggers or foreign keys), read back a batch at a time. Seconds spent in COPY FROM."""
    runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
    with superuser_connect() as admin:
        for name, (source, gin) in COPY_TABLES.items():
            table = sql.Identifier(name)
            admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
            admin.execute(
                sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL)").format(
                    table, sql.Identifier(source)
                )
            )
            if not gin:
                for (index,) in admin.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = %s"
                    " AND indexdef LIKE '%%USING gin%%'",
                    [name],
                ).fetchall():
                    admin.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index)))
            admin.execute(sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(table, runtime))
    spent: dict[str, float] = {}
    try:
        with connection.cursor() as cursor:
            raw = cursor.cursor
            for name, (source, _gin) in COPY_TABLES.items():
                columns = [
                    c.name
                    for c in connection.introspection.get_table_description(cursor, source)
                    if c.name != "search"
                ]
                spent[name] = _copy_back(raw, source, name, columns, batch)
    finally:
        with superuser_connect() as admin:
            for name in COPY_TABLES:
                admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
    return spent


def _copy_back(raw: Any, source: str, target: str, columns: list[str], batch: int) -> float:
    fields = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    read = sql.SQL("COPY (SELECT {} FROM {} WHERE id > %s ORDER BY id LIMIT {}) TO STDOUT").format(
        fields, sql.Identifier(source), sql.Literal(batch)
    )
    write = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(target), fields)
    after, spent = 0, 0.0
    while True:
        with raw.copy(read, [after]) as out:
            data = b"".join(bytes(block) for block in out)
        if not data:
            return spent
        last_row = data[data.rfind(b"\n", 0, len(data) - 1) + 1 :]
        after = int(last_row.split(b"\t", 1)[0])  # id is the first column
        began = time.perf_counter()
        with transaction.atomic(), raw.copy(write) as copy:
            copy.write(data)
        spent += time.perf_counter() - began


def test_import(empty_ledger: None, server_settings: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
    with chain_head_holds(monkeypatch) as holds:
        job = pipeline.run_import(job.pk)  # what imports.tasks.import_task runs
    import_time = time.perf_counter() - began
    if profile:
        profile.disable()
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(
            os.environ.get("BENCH_PROFILE_SORT", "cumulative")
        ).print_stats(40)
        say(out.getvalue())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    assert job.state == "done", job.error
    assert ImportedMessage.objects.count() == MESSAGES == job.counts["created"]

    batch = settings.CHAT_IMPORT_BATCH
    copies = copy_ceilings(batch)
    ceiling_time = append_ceiling(MESSAGES, batch)
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
        [
            "bare COPY of the Message rows, every index",
            seconds(copies["bench_message"]),
            rate(MESSAGES / copies["bench_message"]) + " rows",
        ],
        [
            "the same without the GIN index on search",
            seconds(copies["bench_message_nogin"]),
            rate(MESSAGES / copies["bench_message_nogin"]) + " rows",
        ],
        [
            "bare COPY of the ImportedMessage rows",
            seconds(copies["bench_imported"]),
            rate(MESSAGES / copies["bench_imported"]) + " rows",
        ],
        [
            f"chain-head hold per batch of {batch:,} (median)",
            seconds(statistics.median(holds)),
            "-",
        ],
        [
            f"chain-head hold per batch of {batch:,} (95th percentile)",
            seconds(statistics.quantiles(holds, n=20)[-1] if len(holds) > 1 else holds[0]),
            "-",
        ],
        [f"chain-head hold per batch of {batch:,} (longest)", seconds(max(holds)), "-"],
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
    rows_time = copies["bench_message"] + copies["bench_imported"] + ceiling_time
    record(
        Figure(
            f"chat import: {MESSAGES:,} msgs end to end",
            MESSAGES / import_time,
            "messages/s",
            MESSAGES / rows_time,
            "append + bare COPY of its rows",
        )
    )
    record(
        Figure(
            f"chat import: chain-head hold per batch of {batch:,}",
            max(holds),
            "s",
            target=1.0,
        )
    )
