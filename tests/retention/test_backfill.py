"""An archive sealed before retention existed gets what sealing would have given it."""

from typing import Any

from django.db import connection

from messaging import simulator
from messaging.models import Channel
from retention.assign import backfill
from retention.models import RetentionRecord
from tests.conftest import superuser_connect
from tests.review.conftest import NOW, seal


def test_backfill_gives_every_captured_entry_the_retention_sealing_gives(
    committed: None, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    Channel.objects.create(name="Desk", phone_number_id=simulator.DEMO_CHANNEL["phone_number_id"])
    seal(*simulator.demo_bodies(NOW))
    at_sealing = dict(
        RetentionRecord.objects.values_list("entry_id", "retain_until").order_by("entry_id")
    )
    assert len(at_sealing) > 20
    with superuser_connect() as conn:  # as if the archive predated retention
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM retention_record")
    with connection.cursor() as cursor:
        assert backfill(cursor) == len(at_sealing)
        assert backfill(cursor) == 0  # idempotent
    after = dict(
        RetentionRecord.objects.values_list("entry_id", "retain_until").order_by("entry_id")
    )
    assert after == at_sealing
