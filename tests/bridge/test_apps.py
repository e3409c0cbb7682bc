"""The bridge registers what it adds to the floors below (bridge/apps.py)."""

from bridge import record_of_processing as bridge_record
from bridge import transcript as bridge_transcript
from retention import record_of_processing
from review.transcript import STAFF_NAMERS


def test_it_names_staff_in_transcripts_and_routes_in_the_record_of_processing():
    assert bridge_transcript.name_senders in STAFF_NAMERS
    assert [bridge_record.routes] == record_of_processing.ROUTES
    assert [bridge_record.chat_transfers] == record_of_processing.TRANSFERS
