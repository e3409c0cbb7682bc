"""The overview: traffic per day, open flags by policy, throughput, integrity and ingestion."""

from typing import Any

import time_machine
from django.urls import reverse

from review import dashboard, flags
from tests.review.conftest import NOW


def test_it_counts_messages_in_and_out_per_day(world: Any) -> None:
    with time_machine.travel(NOW + 3600, tick=False):
        days = dashboard.message_days(7)
    assert len(days) == 7
    assert sum(d.inbound for d in days) == 13 and sum(d.outbound for d in days) == 3


def test_it_shows_the_dashboard_to_readers_and_health_to_admins(
    client: Any, reviewer: Any, admin_user: Any, world: Any
) -> None:
    flags.raise_flag(reviewer, world.amelia, None, "look")
    client.force_login(reviewer)
    page = client.get(reverse("home")).content.decode()
    assert "Messages per day" in page and "raised by hand" in page and "Ingestion" not in page
    client.force_login(admin_user)
    page = client.get(reverse("home")).content.decode()
    assert "Deliveries sealed" in page and '<svg class="chart"' in page


def test_it_records_tag_and_policy_changes_in_the_audit_log(
    client: Any, reviewer: Any, world: Any
) -> None:
    from auditlog.models import LogEntry

    from review.models import Tag

    client.force_login(reviewer)
    tag = Tag.objects.get()
    client.post(reverse("review:tag_conversation", args=[world.amelia.pk]), {"tag": tag.pk})
    entry = LogEntry.objects.filter(content_type__model="conversationtag").get()
    assert entry.actor == reviewer and entry.action == LogEntry.Action.CREATE
