import pytest
from hypothesis import given
from hypothesis import strategies as st

from messaging.sequencer import process_deliveries
from messaging.statuses import PRECEDENCE, current_status, current_statuses
from tests.messaging.conftest import fixture_bytes

statuses = st.lists(st.sampled_from([*PRECEDENCE, "deleted", "unknown"]), max_size=8)


@given(statuses, st.randoms())
def test_it_derives_the_same_state_whatever_the_arrival_order(history, random):
    shuffled = list(history)
    random.shuffle(shuffled)
    assert current_status(shuffled) == current_status(history)


@given(statuses)
def test_it_never_lets_a_late_sent_downgrade_a_read(history):
    assert current_status([*history, "read", "sent"]) in {"read", "played", "failed"}


def test_it_has_no_state_without_statuses():
    assert current_status([]) == ""


@pytest.mark.django_db
def test_it_reads_the_current_state_of_archived_statuses(post, channels_for):
    read = fixture_bytes("status-sent-v24-no-conversation-no-pricing__meta-docs.json").replace(
        b'"sent"', b'"read"'
    )
    late_sent = fixture_bytes("status-sent-v24-no-conversation-no-pricing__meta-docs.json")
    (channel,) = channels_for(read)
    for body in (read, late_sent):  # the sent status arrives after the read one
        post(body)
    process_deliveries()
    (wamid,) = set(channel.statusevent_set.values_list("wamid", flat=True))
    assert current_statuses([wamid], channel.pk) == {wamid: "read"}
