"""Participants as people read them: the name a participant showed most recently (their whole
profile history is kept, and sealed)."""

from messaging.models import ParticipantProfile


def participant_key(wa_id: str, user_id: str = "") -> str:
    """A participant's key: their WhatsApp number, or failing that their business-scoped id."""
    return f"wa:{wa_id}" if wa_id else f"bsuid:{user_id}"


def latest_names(participant_ids: set[int]) -> dict[int, str]:
    """Each participant's latest name (their profile history is kept; the latest is shown)."""
    names: dict[int, str] = {}
    profiles = ParticipantProfile.objects.filter(participant_id__in=participant_ids)
    for pid, name, username in profiles.order_by("seen_at", "id").values_list(
        "participant_id", "name", "username"
    ):
        names[pid] = name or username
    return names
