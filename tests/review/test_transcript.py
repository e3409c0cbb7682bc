"""The transcript: everything that was said, shown and never hidden, and hostile input inert."""

import re
from typing import Any

from django.urls import reverse

from archive.checkpoints import create_checkpoint
from archive.models import Checkpoint
from review import transcript
from review.models import AccessEvent
from tests.review.conftest import XSS


def page(client: Any, user: Any, conversation: Any, **params: Any) -> str:
    client.force_login(user)
    response = client.get(reverse("review:conversation", args=[conversation.pk]), params)
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_conversation_in_time_order(client: Any, reviewer: Any, world: Any) -> None:
    html = page(client, reviewer, world.amelia)
    first = html.index("latest statement for the growth portfolio")
    assert first < html.index("move €50,000") < html.index("the statement is on its way")
    assert "Amelia Hart" in html and "+447700900123" in html


def test_it_shows_status_ticks_and_reactions(client: Any, reviewer: Any, world: Any) -> None:
    html = page(client, reviewer, world.amelia)
    reply = re.search(r'<li class="msg out[^"]*" id="m\d+">.*?</li>\s*(?=<li|</ol)', html, re.S)
    assert reply is not None
    assert "✓✓" in reply.group(0) and "read" in reply.group(0)
    assert "🙏" in reply.group(0)


def test_it_shows_the_current_text_of_an_edit_with_its_history(
    client: Any, reviewer: Any, world: Any
) -> None:
    etienne = world.message("wamid.demo-1-1").conversation
    html = page(client, reviewer, etienne)
    assert "move €40,000 into the bond fund" in html
    assert "move €50,000 into the bond fund" in html  # the original stays visible
    assert "Edit history (1)" in html and "edited" in html


def test_it_keeps_a_deleted_message_visible_and_marks_it(
    client: Any, reviewer: Any, world: Any
) -> None:
    html = page(client, reviewer, world.hostile)
    assert "guaranteed returns, tell nobody" in html
    assert "Deleted by sender at" in html


def test_it_renders_hostile_text_names_and_file_names_inert(
    client: Any, reviewer: Any, world: Any
) -> None:
    html = page(client, reviewer, world.hostile)
    assert "<script>alert(1)</script>" not in html
    assert "onerror=alert(2)>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1  # htmx, from our own static files


def test_it_leads_client_links_through_a_warning_page(
    client: Any, reviewer: Any, world: Any
) -> None:
    html = page(client, reviewer, world.hostile)
    assert 'href="https://evil.example' not in html
    assert "/leave/?to=https%3A%2F%2Fevil.example%2Fx%3Fa%3D1" in html
    leave = client.get(reverse("review:leave"), {"to": "https://evil.example/x?a=1"})
    assert (
        b"evil.example" in leave.content and b'rel="noopener noreferrer nofollow"' in leave.content
    )
    assert client.get(reverse("review:leave"), {"to": "javascript:alert(1)"}).status_code == 400


def test_it_shows_images_inline_and_documents_to_download(
    client: Any, reviewer: Any, world: Any
) -> None:
    html = page(client, reviewer, world.hostile)
    image = world.message("wamid.image")
    assert f'src="{reverse("review:media", args=[image.pk])}"' in html
    assert "my passport" in html
    assert "Document" in html and "not fetched yet" in html


def test_it_opens_an_evidence_panel_for_each_message(
    client: Any, reviewer: Any, world: Any
) -> None:
    create_checkpoint()
    message = world.message("wamid.demo-0-0")
    html = page(client, reviewer, world.amelia)
    leaf = bytes(message.entry.leaf_hash).hex()
    assert leaf in html
    size = Checkpoint.objects.get().tree_size
    assert f"signed tree of size {size}" in html


def test_it_opens_at_a_chosen_message_and_loads_around_it(
    client: Any, reviewer: Any, world: Any
) -> None:
    messages = list(transcript._visible(world.amelia).order_by(*transcript.ASC))
    assert len(messages) == 4
    middle = messages[1]
    win = transcript.window(world.amelia, at=middle, size=2)
    assert [r.message for r in win.rows] == messages[0:3]
    assert not win.has_earlier and win.has_later
    earlier = transcript.window(world.amelia, before=messages[2], size=1)
    assert [r.message for r in earlier.rows] == messages[1:2] and earlier.has_earlier
    later = transcript.window(world.amelia, after=messages[2], size=1)
    assert [r.message for r in later.rows] == messages[3:] and not later.has_later
    html = page(client, reviewer, world.amelia, at=middle.pk)
    assert f'id="m{middle.pk}"' in html and "target" in html


def test_it_opens_a_reaction_at_the_message_it_reacts_to(world: Any) -> None:
    reaction = world.message("wamid.demo-react")
    assert transcript.resolve(world.amelia, reaction) == world.message("wamid.demo-0-r")


def test_it_loads_earlier_messages_as_a_fragment(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    last = world.message("wamid.demo-0-r")
    url = reverse("review:conversation_messages", args=[world.amelia.pk])
    response = client.get(url, {"before": last.pk}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "<html" not in html and "latest statement" in html and "on its way" not in html
    assert client.get(url).status_code == 400


def test_it_records_who_read_the_conversation(client: Any, reviewer: Any, world: Any) -> None:
    page(client, reviewer, world.amelia)
    event = AccessEvent.objects.get()
    assert (event.username, event.action, event.object_id) == (
        "rey",
        "view_conversation",
        str(world.amelia.pk),
    )
    assert event.address == "127.0.0.1"


def test_it_serves_media_with_its_access_recorded(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    image = world.message("wamid.image")
    response = client.get(reverse("review:media", args=[image.pk]))
    assert response["Content-Type"] == "image/png"
    assert "sandbox" in response["Content-Security-Policy"]
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert AccessEvent.objects.get().action == "download_media"
    download = client.get(reverse("review:media", args=[image.pk]), {"download": "1"})
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment")


def test_it_sends_a_strict_content_security_policy(client: Any, reviewer: Any, world: Any) -> None:
    client.force_login(reviewer)
    policy = client.get(reverse("review:conversation", args=[world.amelia.pk]))[
        "Content-Security-Policy"
    ]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert XSS not in policy


def test_it_labels_every_form_control(client: Any, reviewer: Any, world: Any) -> None:
    html = page(client, reviewer, world.amelia)
    ids = set(re.findall(r'<(?:textarea|select|input)[^>]* id="([^"]+)"', html))
    labelled = set(re.findall(r'<label[^>]* for="([^"]+)"', html))
    assert ids and ids <= labelled and all(i.strip("-") for i in ids)
    assert len(ids) == len(re.findall(r'<(?:textarea|select)[^>]* id="', html))  # unique
