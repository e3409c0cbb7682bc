"""Lexicon policies: terms, phrases, regular expressions, case and whole-word options, channels;
run on every newly sealed message and on demand over a date range."""

from datetime import timedelta
from typing import Any

import pytest
import regex
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from hypothesis import given
from hypothesis import strategies as st

from archive.models import ChainHead
from messaging.models import Channel, Message
from review import lexicon
from review.models import Flag, LexiconPolicy, LexiconScan, LexiconTerm
from tests.review.conftest import NOW, inbound, seal


def policy(*terms: tuple[str, str], **options: Any) -> LexiconPolicy:
    made = LexiconPolicy.objects.create(name=options.pop("name", "Guarantees"), **options)
    for kind, value in terms:
        LexiconTerm.objects.create(policy=made, kind=kind, value=value)
    return made


def say(text: str, wamid: str) -> Message:
    seal(
        inbound(
            "4477001",
            "Pat",
            {"id": wamid, "timestamp": str(NOW + 300), "type": "text", "text": {"body": text}},
        )
    )
    return Message.objects.get(wamid=wamid)


def test_it_flags_new_messages_once_sealed(world: Any) -> None:
    policy(("term", "guaranteed"), ("phrase", "tell nobody"), severity="high")
    lexicon.scan_new_messages()
    flag = Flag.objects.get()
    assert flag.message.wamid == "wamid.deleted"
    assert sorted(flag.matched) == ["guaranteed", "tell nobody"] and flag.severity == "high"
    say("guaranteed again", "x.1")
    lexicon.scan_new_messages()
    lexicon.scan_new_messages()
    assert Flag.objects.count() == 2
    assert LexiconScan.objects.get().scanned_through >= Message.objects.get(wamid="x.1").entry_id


def message_reads(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if '"messaging_message"' in q["sql"]]


def test_without_a_policy_it_moves_past_new_messages_without_reading_them(world: Any) -> None:
    """A worker meeting an archive it never scanned (a restore, an upgrade) caught up row by
    row, 2,000 whole messages a transaction, with nothing to match them against."""
    policy(("term", "guaranteed"), active=False)
    with CaptureQueriesContext(connection) as queries:
        assert lexicon.scan_new_messages() == 0
    assert message_reads(queries) == []
    head = ChainHead.objects.get().size
    assert LexiconScan.objects.get().scanned_through == head - 1
    say("guaranteed, sealed and scanned while no policy was active", "x.1")
    assert lexicon.scan_new_messages() == 0
    policy(("term", "guaranteed"), name="Now active")
    assert lexicon.scan_new_messages() == 0  # as before: scan_range is for what was scanned
    say("guaranteed now", "x.2")
    assert lexicon.scan_new_messages() == 1
    assert Flag.objects.get().message.wamid == "x.2"


def test_it_reads_of_a_message_only_what_it_matches(world: Any) -> None:
    policy(("term", "guaranteed"))
    with CaptureQueriesContext(connection) as queries:
        assert lexicon.scan_new_messages() == 1
    (read,) = message_reads(queries)  # one statement, and no message loaded field by field
    assert '"messaging_message"."text"' in read
    assert '"messaging_message"."search"' not in read and "payload" not in read


def test_it_matches_whole_words_unless_told_otherwise(world: Any) -> None:
    compiled = lexicon.compile_policies(
        LexiconPolicy.objects.filter(pk=policy(("term", "fund")).pk)
    )
    message = Message(text="refund the funds", channel_id=world.channel.pk)
    assert compiled[0].matches(message) == []
    loose = policy(("term", "fund"), name="loose", whole_word=False)
    assert lexicon.compile_policies(LexiconPolicy.objects.filter(pk=loose.pk))[0].matches(
        message
    ) == ["fund"]


def test_it_respects_case_sensitivity_and_regexes(world: Any) -> None:
    strict = policy(("term", "ETF"), ("regex", r"\b\d{2}% return"), case_sensitive=True)
    (compiled,) = lexicon.compile_policies(LexiconPolicy.objects.filter(pk=strict.pk))
    assert compiled.matches(Message(text="an etf with 12% return", channel_id=1)) == ["12% return"]
    assert compiled.matches(Message(text="an ETF", channel_id=1)) == ["ETF"]


def test_it_matches_phrases_across_any_whitespace(world: Any) -> None:
    (compiled,) = lexicon.compile_policies(
        LexiconPolicy.objects.filter(pk=policy(("phrase", "off the record")).pk)
    )
    assert compiled.matches(Message(text="Off  the\nrecord, ok?", channel_id=1))


def test_it_keeps_to_the_channels_in_scope(world: Any) -> None:
    other = Channel.objects.create(name="Other desk", phone_number_id="999")
    scoped = policy(("term", "guaranteed"))
    scoped.channels.set([other])
    lexicon.scan_new_messages()
    assert not Flag.objects.exists()


def test_it_refuses_a_broken_regular_expression() -> None:
    term = LexiconTerm(kind="regex", value="(unclosed")
    with pytest.raises(ValidationError, match="Not a valid regular expression"):
        term.clean()


def test_it_runs_on_demand_over_a_date_range(world: Any) -> None:
    scanned = LexiconScan.objects.create(scanned_through=10**9)  # as if all were scanned before
    policy(("term", "statement"))
    day = Message.objects.get(wamid="wamid.demo-0-0").sent_at.date()
    call_command("scan_lexicon", "--from", str(day - timedelta(days=1)), "--to", str(day))
    # three clients asked for a statement, and the firm answered each about it
    assert Flag.objects.filter(lexicon_policy__isnull=False).count() == 6
    call_command("scan_lexicon", "--from", str(day), "--to", str(day))
    assert Flag.objects.count() == 6
    assert scanned.pk == 1


def test_it_names_a_bad_date_on_the_command_line(world: Any) -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("scan_lexicon", "--from", "yesterday", "--to", "2026-01-01")


@given(
    word=st.from_regex(r"[A-Za-z]{2,12}", fullmatch=True),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_it_finds_a_whole_word_exactly_where_a_reader_would(
    word: str, before: str, after: str
) -> None:
    pattern = regex.compile(lexicon.term_pattern("term", word, True), regex.IGNORECASE)
    text = f"{before} {word} {after}"
    assert pattern.search(text)
    glued = f"x{word}x"
    assert not pattern.search(glued)


def test_it_flags_what_a_pattern_cannot_evaluate_in_time(world: Any) -> None:
    slow = policy(("regex", r"(x+x+)+y"), name="Backtracking")
    (compiled,) = lexicon.compile_policies(LexiconPolicy.objects.filter(pk=slow.pk))
    assert compiled.matches(Message(text="x" * 5000, channel_id=1)) == [
        "(x+x+)+y (too slow to evaluate: review by hand)"
    ]
    assert compiled.matches(Message(text="xxy", channel_id=1)) == ["xxy"]
