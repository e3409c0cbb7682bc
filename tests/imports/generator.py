"""Shared helpers of the parser tests: open a fixture or a string as an export and parse it."""

from collections.abc import Iterable
from pathlib import Path

from imports.parsing import Detected, Entry, ExportFile, detect, parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "chat-exports"


def read(
    path: Path, name: str | None = None, order: str | None = None, **kw: int
) -> tuple[Detected, list[Entry]]:
    """Detect and parse a file; `order` overrides the detected order (needed when it is None)."""
    with ExportFile.open(path, name or path.name) as export:
        detected = detect(export)
        chosen = order or detected.date_order
        assert chosen is not None, detected.order_evidence
        return detected, list(parse(export, detected, chosen, **kw))


def fixture(name: str, order: str | None = None) -> tuple[Detected, list[Entry]]:
    return read(FIXTURES / name, name, order)


def text_export(
    tmp_path: Path, lines: Iterable[str] | str, order: str | None = None, *, name: str = "chat.txt"
) -> tuple[Detected, list[Entry]]:
    """Lines (joined with "\\n") or exact text written as UTF-8 and parsed."""
    body = lines if isinstance(lines, str) else "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_bytes(body.encode("utf-8"))
    return read(path, name, order)


def by_author(entries: list[Entry]) -> dict[str | None, list[Entry]]:
    found: dict[str | None, list[Entry]] = {}
    for entry in entries:
        found.setdefault(entry.author, []).append(entry)
    return found
