from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive import ledger
from archive.envelope import Fact
from exports import source as source_module
from exports.scope import Scope
from tests.exports.conftest import SAMPLES, Rich


def test_it_reads_a_conversation_decorated_in_time_order(rich: Rich, make_source: Any) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    (part,) = list(source.parts())
    rows = list(part.rows())
    assert part.count == len(rows) == len(SAMPLES) + 6
    assert [r.message.sent_at for r in rows] == sorted(r.message.sent_at for r in rows)
    by_wamid = {r.message.wamid: r for r in rows}
    assert by_wamid["wamid.rich-typo"].current_text == "I will wire 10,000 tomorrow"
    assert by_wamid["wamid.rich-gone"].revoked is not None
    assert by_wamid["wamid.rich-out"].status == "read"
    assert [r.payload["reaction"]["emoji"] for r in by_wamid["wamid.rich-out"].reactions] == ["🙏"]
    assert by_wamid["wamid.rich-reply"].quoted == rich.message("wamid.rich-ar")
    assert by_wamid["wamid.rich-img"].attachment.file is not None


def test_it_shows_the_archive_as_of_its_checkpoint(rich: Rich, make_source: Any) -> None:
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    ledger.append([Fact("test.later", {}, {})])  # sealed after the checkpoint
    assert source.count() == len(SAMPLES) + 6
    assert all(r.message.entry_id < source.tree_size for p in source.parts() for r in p.rows())


def test_it_finds_every_conversation_of_a_participant(rich: Rich, make_source: Any) -> None:
    source = make_source(Scope.for_participant("+971 50 123 4567"))
    assert [p.conversation for p in source.parts()] == [rich.conversation]


def test_it_exports_a_search_with_its_filters(rich: Rich, make_source: Any) -> None:
    scope = Scope.for_search({"q": "statement", "direction": "out"})
    texts = [r.message.text for p in make_source(scope).parts() for r in p.rows()]
    assert "The statement was sent this morning." in texts
    assert all("statement" in t.lower() for t in texts)


def test_it_reads_conversations_a_batch_at_a_time_in_the_same_order(
    rich: Rich, make_source: Any, monkeypatch: Any
) -> None:
    source = make_source(Scope.for_search({"date_from": "2000-01-01"}))
    whole = [(p.conversation.pk, p.count, p.name) for p in source.parts()]
    monkeypatch.setattr(source_module, "CHUNK", 1)  # one conversation per batch
    assert [(p.conversation.pk, p.count, p.name) for p in source.parts()] == whole
    assert len(whole) == source.conversation_count() > 1


def test_a_conversation_is_read_chunk_by_chunk_without_a_last_empty_read(
    rich: Rich, make_source: Any, monkeypatch: Any
) -> None:
    """The same rows in the same order whatever the chunk, one statement reading the messages
    per chunk: a chunk shorter than CHUNK is the last, so nothing is read after it (at 6,000
    messages in 1,287 conversations, one statement of ~7 per conversation and format)."""
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    (part,) = list(source.parts())
    whole = [r.message.pk for r in part.rows()]
    for chunk in (1, 2, len(whole) - 1, len(whole), len(whole) + 1):
        monkeypatch.setattr(source_module, "CHUNK", chunk)
        (part,) = list(source.parts())
        with CaptureQueriesContext(connection) as captured:
            assert [r.message.pk for r in part.rows()] == whole
        reads = [
            q["sql"]
            for q in captured.captured_queries
            if q["sql"].startswith('SELECT "messaging_message"."id"') and " LIMIT " in q["sql"]
        ]
        assert len(reads) == -(-len(whole) // chunk) + (len(whole) % chunk == 0), (chunk, reads)


def shown(row: Any) -> tuple[Any, ...]:
    """Everything decorate() gave a row, by primary key where it is a record."""

    def pk(item: Any) -> Any:
        return None if item is None else item.pk

    return (
        row.message.pk,
        row.sender_name,
        row.status,
        [pk(s) for s in row.statuses],
        [pk(m) for m in row.reactions],
        [pk(m) for m in row.edits],
        pk(row.revoked),
        pk(row.quoted),
        pk(row.attachment),
        row.checkpoint,
        row.imported,
        [pk(i) for i in row.linked_imports],
    )


def test_short_conversations_are_read_together_as_each_alone(
    rich: Rich, make_source: Any, monkeypatch: Any
) -> None:
    """Conversations shorter than a chunk are read a group at a time (one statement for their
    messages, one decorate per channel): the parts and every row are what each conversation read
    on its own gives, in far fewer statements."""
    source = make_source(Scope.for_search({"date_from": "2000-01-01"}))

    def read() -> tuple[list[Any], int]:
        with CaptureQueriesContext(connection) as captured:
            parts = [
                (p.conversation.pk, p.count, p.name, [shown(r) for r in p.rows()])
                for p in source.parts()
            ]
        return parts, len(captured.captured_queries)

    together, statements = read()
    monkeypatch.setattr(source_module, "_together", lambda stats: ([s] for s in stats))
    alone, alone_statements = read()
    assert together == alone
    assert len(together) > 3 and sum(len(rows) for *_, rows in together) > len(together)
    assert statements < alone_statements / 2, (statements, alone_statements)


def test_a_group_is_never_longer_than_a_chunk() -> None:
    stats = [{"n": n} for n in (3, 200, 250, 60, 500, 1, 1, 499, 7)]
    groups = [[s["n"] for s in group] for group in source_module._together(stats)]
    assert groups == [[3, 200, 250], [60], [500], [1, 1], [499], [7]]
    assert [n for group in groups for n in group] == [s["n"] for s in stats]
