"""What the bridge adds to the record of processing (GDPR Art. 30): the relays and routes it
sends data through, and the chat services that process it (registered in
retention.record_of_processing by BridgeConfig.ready())."""

from urllib.parse import urlsplit

from django.conf import settings

from bridge.models import Route


def routes() -> list[str]:
    """Where the archive sends data on its own (journals, bridges, mail relays); empty if none."""
    routes = []
    relays = {"Mail relay": settings.EMAIL_URL, "Journal relay": settings.JOURNAL_EMAIL_URL}
    seen = set()
    for label, url in relays.items():
        parts = urlsplit(url)
        if parts.scheme in ("smtp", "smtps") and parts.hostname and url not in seen:
            seen.add(url)
            routes.append(f"{label} {parts.hostname}")
    for route in Route.objects.filter(active=True).select_related("channel", "conversation"):
        scope = (
            f"{route.channel.name}, conversation {route.conversation_id}"
            if route.conversation_id
            else route.channel.name
        )
        content = "notice and a portal link only" if route.metadata_only else "message content"
        targets = []
        staff = len(route.email_recipients) + route.users.count()
        if staff:
            targets.append(f"email to {staff} staff address(es) ({content})")
        if route.slack_url:
            targets.append(f"Slack ({urlsplit(route.slack_url).hostname}; {content})")
        if route.teams_url:
            targets.append(f"Microsoft Teams ({urlsplit(route.teams_url).hostname}; {content})")
        if route.journal_address:
            targets.append(f"journal copy of every message to {route.journal_address}")
        if targets:
            routes.append(f"{scope}: " + "; ".join(targets))
    return routes


def chat_transfers() -> list[str]:
    """Chat services a route notifies (their hosts decide where the data goes)."""
    routes = Route.objects.filter(active=True)
    found = []
    what = "client names and numbers, and message excerpts unless a route is metadata-only"
    if routes.exclude(slack_url="").exists():
        found.append(
            f"Slack (Salesforce), as the firm's processor for staff notifications: {what}, "
            "posted to the firm's workspace."
        )
    if routes.exclude(teams_url="").exists():
        found.append(
            f"Microsoft, as the firm's processor for Teams notifications: {what}, posted to the "
            "firm's tenant."
        )
    return found
