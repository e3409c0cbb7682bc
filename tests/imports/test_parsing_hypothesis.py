"""Generated exports in every supported variant parse back to exactly the generated messages."""

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from tests.imports.generator import Message, Variant, exports, read, render


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exports())
def test_it_reads_back_what_was_rendered(case: tuple[Variant, list[Message], bool]) -> None:
    variant, messages, decidable = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chat.txt"
        path.write_bytes(render(messages, variant))
        detected, entries = read(path, order=variant.order)
    if decidable:
        assert detected.date_order == variant.order, detected.order_evidence
    else:
        assert detected.date_order is None, detected.order_evidence
    assert detected.platform == variant.platform
    got = [(e.local_time, e.author, e.text, e.kind, e.attachment) for e in entries]
    assert got == [(m.when, m.author, m.text, m.kind, m.attachment) for m in messages]
