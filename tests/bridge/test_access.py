"""Who may reply in a conversation and see or retry the bridge's work (bridge/access.py): the
permitted user gets the object or queryset, anyone else a 403, a missing conversation a 404."""

from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.test import RequestFactory

from bridge import access, outbound
from bridge.models import MessageTemplate, Notification, Outbound
from messaging.models import Channel, Conversation
from tests.bridge.conftest import text_body


def asking(user: User) -> Any:
    request = RequestFactory().get("/")
    request.user = User.objects.get(pk=user.pk)  # no cached permissions
    return request


def can_reply(user: User) -> User:
    user.user_permissions.add(Permission.objects.get(codename="reply_to_client"))
    return user


@pytest.fixture
def chat(capture: Any, route: Any) -> Conversation:
    return capture(text_body("Hello", wamid="wamid.A1"))


@pytest.fixture
def notification(chat: Conversation, route: Any) -> Notification:
    return Notification.objects.create(route=route, conversation=chat, kind="email")


def test_it_gives_a_user_who_may_reply_the_conversation(reviewer, chat) -> None:
    assert access.conversation_to_reply_in(asking(can_reply(reviewer)), chat.pk) == chat


def test_it_refuses_a_reviewer_without_the_reply_permission(reviewer, chat) -> None:
    with pytest.raises(PermissionDenied, match="reply_to_client"):
        access.conversation_to_reply_in(asking(reviewer), chat.pk)


def test_it_refuses_an_outsider_holding_only_the_reply_permission(outsider, chat) -> None:
    with pytest.raises(PermissionDenied, match="read_archive"):
        access.conversation_to_reply_in(asking(can_reply(outsider)), chat.pk)


def test_it_answers_404_for_a_conversation_that_does_not_exist(reviewer, chat) -> None:
    with pytest.raises(Http404):
        access.conversation_to_reply_in(asking(can_reply(reviewer)), chat.pk + 1000)


def test_it_offers_only_the_conversations_numbers_active_templates(reviewer, chat, channel):
    ours = MessageTemplate.objects.create(channel=channel, name="ours", body="")
    MessageTemplate.objects.create(channel=channel, name="old", body="", active=False)
    other = Channel.objects.create(name="Other desk", phone_number_id="555")
    MessageTemplate.objects.create(channel=other, name="theirs", body="")
    templates = access.templates_for_user(asking(can_reply(reviewer)), chat)
    assert list(templates) == [ours]


def send(chat: Conversation, user: User) -> Outbound:
    author = outbound.Author(Outbound.Source.PORTAL, user, submission=f"key-{user.pk}")
    (sent,) = outbound.send(chat, [outbound.Text("On my way")], author)
    return sent


def test_it_lists_only_the_users_own_replies(reviewer, admin_user, chat, meta) -> None:
    mine = send(chat, reviewer)
    send(chat, admin_user)
    assert list(access.replies_of_user(asking(can_reply(reviewer)))) == [mine]


def test_it_shows_an_auditor_the_bridges_work(auditor, notification) -> None:
    request = asking(auditor)
    assert list(access.notifications_for_user(request)) == [notification]
    assert not access.reply_emails_for_user(request).exists()
    assert not access.sends_for_user(request).exists()


@pytest.mark.parametrize(
    "helper", ["notifications_for_user", "reply_emails_for_user", "sends_for_user"]
)
def test_it_refuses_a_reviewer_the_bridges_work(reviewer, helper) -> None:
    with pytest.raises(PermissionDenied, match="view_reconciliation"):
        getattr(access, helper)(asking(reviewer))


def test_it_lets_an_administrator_retry_what_was_not_sent(admin_user, notification) -> None:
    Notification.objects.create(
        route=notification.route,
        conversation=notification.conversation,
        kind="journal",
        state="sent",
    )
    assert list(access.retriable_notifications(asking(admin_user))) == [notification]


@pytest.mark.parametrize("who", ["auditor", "outsider"])
def test_it_refuses_anyone_else_a_retry(request, who, notification) -> None:
    with pytest.raises(PermissionDenied, match="change_route"):
        access.retriable_notifications(asking(request.getfixturevalue(who)))
