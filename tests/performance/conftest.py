"""Benchmark machinery: figures collected during the run and printed as one summary table.

Benchmarks are not tests: they print what they measure and never assert on speed (they do
assert correctness, e.g. that the ledger still verifies). Every figure is measured beside its
ceiling in the same run, because this 2-core machine is shared and noisy; the ratio is the
figure to compare between runs. The figures in ../shared/PERFORMANCE-CEILINGS.md are only
a reference: they were measured with durable commits, while `make bench` runs on a throwaway
cluster with fsync and synchronous_commit off.
"""

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, connections
from psycopg import sql

from tests.conftest import superuser_connect, wipe_archive


def say(text: str = "") -> None:
    """Benchmarks print (pytest runs with -s); flush so figures appear as they are measured."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def table(headers: list[str], rows: list[list[str]], *, title: str = "") -> str:
    """A plain fixed-width table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "-" * len(line(headers))
    text = [title] if title else []
    text += [line(headers), rule, *(line(r) for r in rows)]
    return "\n".join(text)


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def seconds(value: float) -> str:
    return f"{value * 1000:,.1f} ms" if value < 1 else f"{value:,.2f} s"


def median_of(runs: int, measure: Callable[[], float]) -> tuple[float, list[float]]:
    values = [measure() for _ in range(runs)]
    return statistics.median(values), values


@dataclass
class Figure:
    """One line of the summary: our figure, its same-run ceiling, the documented reference."""

    name: str
    ours: float
    unit: str  # "entries/s" (higher is better) or "s" (lower is better)
    ceiling: float | None = None
    ceiling_label: str = ""
    reference: str = ""  # the figure from PERFORMANCE-CEILINGS.md, when there is one
    target: float | None = None

    @property
    def per_second(self) -> bool:
        return self.unit != "s"

    def shown(self, value: float) -> str:
        return rate(value) if self.per_second else seconds(value)

    @property
    def ratio(self) -> str:
        if self.ceiling is None:
            return "-"
        value = self.ours / self.ceiling if self.per_second else self.ceiling / self.ours
        return f"{value:.2f}"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return (
            f">= {self.shown(self.target)}" if self.per_second else f"<= {self.shown(self.target)}"
        )

    @property
    def met(self) -> str:
        if self.target is None:
            return "-"
        ok = self.ours >= self.target if self.per_second else self.ours <= self.target
        return "yes" if ok else "NO"


FIGURES: list[Figure] = []
STARTED = time.perf_counter()


def record(figure: Figure) -> None:
    FIGURES.append(figure)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the benchmarks that wipe the archive before those sharing the 1M-entry ledger."""
    items.sort(key=lambda item: "million" in getattr(item, "fixturenames", ()))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    rows = [
        [
            f.name,
            f.shown(f.ours),
            f"{f.shown(f.ceiling)} ({f.ceiling_label})" if f.ceiling is not None else "-",
            f.ratio,
            f.reference or "-",
            f.target_text,
            f.met,
        ]
        for f in FIGURES
    ]
    headers = ["figure", "ours", "ceiling, same run", "ratio", "doc reference", "target", "met"]
    terminalreporter.write_line("")
    terminalreporter.write_line(table(headers, rows, title="== benchmark summary"))
    terminalreporter.write_line(
        "ratio = ours / ceiling for rates, ceiling / ours for times; doc reference = "
        "PERFORMANCE-CEILINGS.md (durable commits; this cluster runs with fsync off)."
    )
    terminalreporter.write_line(f"benchmarks took {time.perf_counter() - STARTED:,.0f} s")


# --------------------------------------------------------------------------- scratch tables

SCRATCH_TABLES = {
    "bench_raw_entry": "seq bigint, kind text, envelope bytea, leaf_hash bytea, link bytea,"
    " sealed_at timestamptz",
    "bench_raw_content": "seq bigint, name text, salt bytea, content bytea",
}


@pytest.fixture(scope="session")
def scratch(django_db_setup: None) -> Iterator[Callable[[], None]]:
    """Plain tables shaped like the ledger's (no triggers, constraints or indexes).

    Created by the superuser and granted to the runtime role, so the raw inserts run on the
    same connection role as append(); regular (logged) tables, as the ledger's are. Yields a
    function that empties them.
    """
    runtime = sql.Identifier(settings.DATABASES["default"]["USER"])
    with superuser_connect() as conn:
        for name, columns in SCRATCH_TABLES.items():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(name), sql.SQL(columns))
            )
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(name), runtime)
            )

    def empty() -> None:
        with superuser_connect() as conn:
            conn.execute(
                sql.SQL("TRUNCATE {}").format(
                    sql.SQL(", ").join(sql.Identifier(name) for name in SCRATCH_TABLES)
                )
            )

    yield empty
    with superuser_connect() as conn:
        for name in SCRATCH_TABLES:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def server_settings(django_db_setup: None) -> str:
    with superuser_connect() as conn:
        values = [
            f"{name}={conn.execute(sql.SQL('SHOW {}').format(sql.Identifier(name))).fetchone()[0]}"
            for name in ("server_version", "fsync", "synchronous_commit", "shared_buffers")
        ]
    return ", ".join(values)


@pytest.fixture
def empty_ledger(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Committed data on an empty ledger, wiped afterwards (as tests/conftest.py `committed`)."""
    with django_db_blocker.unblock():
        wipe_archive()
        try:
            yield
        finally:
            connection.close()
            connections.close_all()
            wipe_archive()


# As Meta's webhook POSTs arrive (tests/performance/bench_review.py makes their bodies).
WEBHOOK_HEADERS = {"CONTENT_TYPE": "application/json", "HTTP_USER_AGENT": "facebookexternalua"}


def store_deliveries(chunk: list[tuple[bytes, int]]) -> None:
    """Webhook bodies (with their Unix receipt times) stored as the webhook view stores them."""
    from messaging.models import Delivery

    Delivery.objects.bulk_create(
        [
            Delivery(
                body=body,
                headers={**WEBHOOK_HEADERS, "CONTENT_LENGTH": str(len(body))},
                remote_addr="173.252.127.1",
                received_at=datetime.fromtimestamp(received, tz=UTC),
            )
            for body, received in chunk
        ]
    )
