"""No delivery can stop the archive (issue 13 §1): whatever a signed body holds, it is sealed,
as records or as an unparsed item with its bytes, and the deliveries after it are sealed too."""

import json

import pytest
from django.db import DataError, OperationalError, connection, models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive.verify import verify_ledger
from messaging import sequencer
from messaging.models import (
    Channel,
    Delivery,
    DeliverySeal,
    Message,
    ParticipantProfile,
    PendingDelivery,
)
from messaging.models import UnparsedItem as Unparsed
from messaging.sequencer import process_deliveries
from tests.conftest import superuser_connect

pytestmark = pytest.mark.django_db
CHANNEL = "106540352242922"


def body(wamid: str = "wamid.good", text: str = "hello", **overrides: object) -> bytes:
    message = {
        "from": "447700900123",
        "id": wamid,
        "timestamp": "1750101000",
        "type": "text",
        "text": {"body": text},
    }
    contact = {"profile": {"name": "Ann"}, "wa_id": "447700900123"}
    message.update(overrides.pop("message", {}))  # type: ignore[call-overload]
    contact.update(overrides.pop("contact", {}))  # type: ignore[call-overload]
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": CHANNEL},
        "contacts": [contact],
        "messages": [message],
    }
    document = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
        {"value": value, "field": "messages"}
    ]}]}  # fmt: skip
    return json.dumps(document).encode()


def seal(*bodies: bytes) -> None:
    Channel.objects.get_or_create(phone_number_id=CHANNEL, defaults={"name": "Desk"})
    Delivery.objects.bulk_create(Delivery(body=b, headers={}) for b in bodies)
    process_deliveries()


def assert_unstoppable(*poison: bytes) -> None:
    """The poison delivery and a good one after it are both sealed; the good message is there."""
    seal(*poison, body("wamid.after"))
    assert not Delivery.objects.filter(seal__isnull=True).exists()
    assert Message.objects.filter(wamid="wamid.after").count() == 1
    assert verify_ledger().intact


def test_it_seals_a_nul_in_a_text_body_in_a_safe_form():
    assert_unstoppable(body(text="a\x00b"))
    assert Message.objects.get(wamid="wamid.good").text == "a\ufffdb"


def test_it_keeps_the_exact_bytes_of_a_nul_in_the_delivery():
    poison = body(text="a\x00b")
    assert_unstoppable(poison)
    seal_entry = DeliverySeal.objects.order_by("pk").first().entry
    assert bytes(seal_entry.contents.get(name="body").content) == poison
    assert b"a\\u0000b" in poison


def test_it_seals_a_nul_in_a_profile_name():
    assert_unstoppable(body(contact={"profile": {"name": "Ann\x00"}}))
    assert ParticipantProfile.objects.filter(name="Ann\ufffd").exists()


def test_it_seals_a_nul_in_a_wamid():
    assert_unstoppable(body(wamid="wamid.\x00"))
    assert Message.objects.filter(wamid="wamid.\ufffd").exists()


def test_it_seals_a_lone_surrogate():
    assert_unstoppable(body(text="\ud800 alone"))
    assert Message.objects.get(wamid="wamid.good").text == "\ufffd alone"


def test_it_refuses_a_from_of_200_characters_into_an_unparsed_item():
    assert_unstoppable(body(message={"from": "4" * 200}))
    item = Unparsed.objects.get()
    assert item.reason == "from is 200 characters long (at most 64)"
    assert not Message.objects.filter(wamid="wamid.good").exists()


def test_it_refuses_a_wamid_of_5000_characters_into_an_unparsed_item():
    assert_unstoppable(body(wamid="w" * 5000))
    assert Unparsed.objects.get().reason == "id is 5000 characters long (at most 250)"


def test_it_refuses_a_media_id_longer_than_its_column_into_an_unparsed_item():
    image = {"type": "image", "image": {"id": "m" * 201, "mime_type": "image/jpeg"}}
    assert_unstoppable(body(message=image))
    assert Unparsed.objects.get().reason == "media_id is 201 characters long (at most 200)"


def test_it_refuses_a_quoted_wamid_longer_than_its_column_into_an_unparsed_item():
    assert_unstoppable(body(message={"context": {"id": "q" * 251}}))
    assert Unparsed.objects.get().reason == "message_id is 251 characters long (at most 250)"


def test_it_seals_json_nested_3000_levels_as_one_unparsed_item():
    poison = b"[" * 3000 + b"]" * 3000
    assert_unstoppable(poison)
    item = Unparsed.objects.get()
    assert bytes(item.raw) == poison
    assert item.reason.startswith("body is not JSON: RecursionError")


def test_it_seals_json_nested_deeper_than_meta_sends_as_one_unparsed_item():
    poison = b'{"entry": ' + b"[" * 100 + b"]" * 100 + b"}"
    assert_unstoppable(poison)
    assert Unparsed.objects.get().reason == "body nests deeper than 64 levels"


def test_it_seals_a_binary_body_with_nul_bytes_as_one_unparsed_item():
    poison = b"\x00\xff\xfe binary \x00"
    assert_unstoppable(poison)
    assert bytes(Unparsed.objects.get().raw) == poison


def test_it_keeps_infinite_numbers_out_of_jsonb():
    assert_unstoppable(body(message={"extra": 1}).replace(b'"extra": 1', b'"extra": 1e400'))
    assert Message.objects.get(wamid="wamid.good").payload["extra"] == "1e400"


def test_it_seals_nan_as_one_unparsed_item():
    assert_unstoppable(body(message={"extra": 1}).replace(b'"extra": 1', b'"extra": NaN'))
    assert "NaN" in Unparsed.objects.get().reason


def test_it_seals_a_delivery_the_database_refuses_whole_with_the_exception_class():
    """A text of distinct words whose tsvector passes PostgreSQL's 1 MB limit: only the insert
    finds out, so the batch is sealed again one delivery at a time."""
    words = " ".join(f"w{n:06d}" for n in range(170_000))
    assert_unstoppable(body(text=words))
    item = Unparsed.objects.get()
    assert (item.path, item.error) == ("$", "ProgramLimitExceeded")
    assert "could not be sealed" in item.reason
    assert bytes(item.raw) == bytes(Delivery.objects.order_by("pk").first().body)
    assert DeliverySeal.objects.order_by("pk").first().unparsed == 1


def test_it_writes_a_large_batch_by_copy_as_bulk_create_would():
    seal(*(body(f"wamid.{n}", text=f"note {n}") for n in range(sequencer.COPY_FROM_ROWS + 4)))
    messages = list(Message.objects.order_by("id"))
    assert [m.wamid for m in messages] == [f"wamid.{n}" for n in range(12)]
    assert all(m.conversation_id == messages[0].conversation_id for m in messages)
    assert Message.objects.filter(search="note").count() == 12  # the generated tsvector
    assert Message.objects.filter(delivery__seal__entry__gt=models.F("entry")).count() == 12
    assert verify_ledger().intact


def test_it_seals_a_delivery_the_database_refuses_among_copied_ones():
    words = " ".join(f"w{n:06d}" for n in range(170_000))
    good = [body(f"wamid.{n}") for n in range(sequencer.COPY_FROM_ROWS + 2)]
    assert_unstoppable(*good[:5], body("wamid.bad", text=words), *good[5:])
    assert Unparsed.objects.get().error == "ProgramLimitExceeded"
    assert Message.objects.count() == len(good) + 1


def test_it_adds_a_profile_only_when_a_name_changes_between_batches():
    seal(body("wamid.1"))
    seal(body("wamid.2"))  # the same name, read back from the archive: no new profile
    seal(body("wamid.3", contact={"profile": {"name": "Ann B."}}))
    names = list(ParticipantProfile.objects.order_by("id").values_list("name", flat=True))
    assert names == ["Ann", "Ann B."]


def test_it_queues_every_new_delivery_until_it_is_sealed():
    Delivery.objects.bulk_create(Delivery(body=body(), headers={}) for _ in range(3))
    queued = set(PendingDelivery.objects.values_list("delivery_id", flat=True))
    assert queued == set(Delivery.objects.values_list("id", flat=True))
    seal()
    assert not PendingDelivery.objects.exists()
    assert DeliverySeal.objects.count() == 3


def test_it_blames_the_content_for_data_errors_psycopg_raises_before_sending():
    """A safety net behind messaging/hygiene.py: such an error is not retried forever."""
    with pytest.raises(DataError) as raised, connection.cursor() as cursor:
        cursor.execute("SELECT %s::text", ["a\x00b"])
    assert getattr(raised.value.__cause__, "sqlstate", None) is None
    assert not sequencer._not_the_content(raised.value)


def test_it_leaves_deliveries_pending_when_the_database_not_the_content_fails():
    """A lock that cannot be had is the database's trouble: nothing is blamed on the content."""
    Channel.objects.get_or_create(phone_number_id=CHANNEL, defaults={"name": "Desk"})
    Delivery.objects.create(body=body(), headers={})
    with superuser_connect() as other, other.transaction():
        other.execute("SELECT 1 FROM archive_chainhead WHERE id = 1 FOR UPDATE")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '200ms'")
        with pytest.raises(OperationalError):
            process_deliveries()
    assert Unparsed.objects.count() == 0
    assert not DeliverySeal.objects.exists()
    assert PendingDelivery.objects.count() == 1  # still queued for the next run


# A stream of deliveries, any of which may be poison (hypothesis).
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=12),  # NULs and lone surrogates too
    st.sampled_from(["\x00", "\ud800", "\udfff x", "x" * 10_000, "\u202e\u0000\u200b"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["entry", "changes", "value", "id"]) | hostile_text,
            children,
            max_size=3,
        )
    ),
    max_leaves=12,
)
good = st.tuples(st.just("good"), hostile_text, hostile_text)
poison = st.one_of(
    st.tuples(st.just("bytes"), st.binary(max_size=40)),
    st.tuples(st.just("json"), json_values),
    st.tuples(st.just("deep"), st.integers(65, 3_000)),
    st.tuples(st.just("long"), st.sampled_from(["from", "id", "type", "group_id"])),
)
stream_counter = iter(range(10**9))


def stream_body(kind: str, *args: object) -> tuple[bytes, str | None]:
    """The body, and the wamid of the message it must archive (None for poison)."""
    n = next(stream_counter)
    if kind == "good":
        wamid = f"wamid.s{n}"
        return body(wamid, str(args[0]), contact={"profile": {"name": args[1]}}), wamid
    if kind == "bytes":
        return args[0], None  # type: ignore[return-value]
    if kind == "json":
        return json.dumps(args[0]).encode(), None
    if kind == "deep":
        depth = int(args[0])  # type: ignore[call-overload]
        return body(f"wamid.d{n}").replace(b'"hello"', b"[" * depth + b"]" * depth), None
    return body(f"wamid.l{n}", message={str(args[0]): "9" * 5_000}), None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(st.one_of(good, poison), min_size=1, max_size=12))
def test_it_seals_every_good_message_once_and_in_order_whatever_else_comes(stream):
    bodies = [stream_body(*delivery) for delivery in stream]
    first = Delivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    seal(*(b for b, _ in bodies))
    assert not Delivery.objects.filter(seal__isnull=True).exists()
    new = list(Delivery.objects.filter(pk__gt=first).order_by("pk").select_related("seal"))
    archived = Message.objects.filter(delivery__in=new).order_by("entry_id")
    assert list(archived.values_list("wamid", flat=True)) == [w for _, w in bodies if w]
    for delivery, (_, wamid) in zip(new, bodies, strict=True):
        if wamid is None:  # poison: unparsed, or (bytes that happen to be JSON) nothing at all
            assert not Message.objects.filter(delivery=delivery).exists()
            assert delivery.seal.unparsed >= 1 or delivery.seal.items == 0
