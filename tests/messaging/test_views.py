import pytest
from django.urls import reverse

from messaging.sequencer import process_deliveries
from tests.messaging.conftest import fixture_bytes

pytestmark = pytest.mark.django_db


def test_it_shows_administrators_the_ingestion_health(client, admin_user, post, channels_for):
    body = fixture_bytes("message-reaction__meta-docs.json")
    channels_for(body)
    post(body)
    post(body)
    post(b"{broken")
    post(body, signature="sha256=" + "0" * 64)
    process_deliveries()
    client.force_login(admin_user)
    page = client.get(reverse("ingestion")).content.decode()
    assert 'id="sealed">3<' in page
    assert 'id="duplicates">1<' in page
    assert 'id="unparsed">1' in page
    assert "mismatch" in page


@pytest.mark.parametrize("role", ["reviewer", "auditor", "legal"])
def test_it_keeps_other_roles_out(request, client, role):
    client.force_login(request.getfixturevalue(role))
    assert client.get(reverse("ingestion")).status_code == 403


def test_it_keeps_outsiders_out(client, outsider):
    client.force_login(outsider)
    assert client.get(reverse("ingestion")).status_code == 403


def test_it_lists_a_quarantined_delivery_with_its_reason_and_error(client, admin_user, post):
    post(b"\x00\xff not json")
    process_deliveries()
    client.force_login(admin_user)
    page = client.get(reverse("ingestion")).content.decode()
    assert "body is not JSON: UnicodeDecodeError" in page
    assert 'class="unparsed-item"' in page and ">no</td>" in page
    assert reverse("admin:messaging_unparseditem_changelist") in page
