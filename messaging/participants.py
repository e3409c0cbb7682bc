"""Participants as people read them: the name a participant showed most recently (their whole
profile history is kept, and sealed)."""

from messaging.models import ParticipantProfile


def latest_names(participant_ids: set[int]) -> dict[int, str]:
    """Each participant's latest name (their profile history is kept; the latest is shown)."""
    names: dict[int, str] = {}
    profiles = ParticipantProfile.objects.filter(participant_id__in=participant_ids)
    for pid, name, username in profiles.order_by("seen_at", "id").values_list(
        "participant_id", "name", "username"
    ):
        names[pid] = name or username
    return names
