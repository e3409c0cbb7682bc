"""What the bridge adds to a transcript: who at the firm sent a message, and how (registered
in review.transcript.STAFF_NAMERS by BridgeConfig.ready())."""

from bridge.models import Outbound
from review.transcript import Row


def name_senders(rows: list[Row]) -> None:
    """Name the staff member on each row whose message the bridge sent, "by email" or "from
    the portal"."""
    by_message = {row.message.pk: row for row in rows}
    sends = Outbound.objects.filter(message_id__in=by_message).select_related("user")
    for send in sends:
        user = send.user
        who = (user.get_full_name() or user.get_username()) if user is not None else send.sender
        how = "by email" if send.source == Outbound.Source.EMAIL else "from the portal"
        by_message[send.message_id].sender_name = f"{who or 'staff'} ({how})"  # type: ignore[index]
