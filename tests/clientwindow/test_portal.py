import re

import pytest
from django.urls import reverse

from archive import ledger
from archive.checkpoints import create_checkpoint, verifier_key_text
from archive.ledger import Fact

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def login(client):
    def log_in(user):
        client.force_login(user)
        return client

    return log_in


def test_it_sends_anonymous_visitors_to_the_login_page(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


def test_it_logs_in_with_a_password(client, reviewer):
    response = client.post(reverse("login"), {"username": "rey", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_it_refuses_a_wrong_password(client, reviewer):
    response = client.post(reverse("login"), {"username": "rey", "password": "wrong"})
    assert "didn't match" in response.content.decode()


def test_it_logs_out_only_by_post(login, reviewer):
    client = login(reviewer)
    assert client.get(reverse("logout")).status_code == 405
    client.post(reverse("logout"))
    assert client.get(reverse("home")).status_code == 302


def test_it_shows_an_outsider_only_the_no_role_notice(login, outsider):
    response = login(outsider).get(reverse("home"))
    assert response.status_code == 403
    assert "No role assigned" in response.content.decode()
    assert "Archive integrity" not in response.content.decode()


def test_it_keeps_the_public_key_from_outsiders(login, outsider):
    assert login(outsider).get(reverse("public_key")).status_code == 403


@pytest.mark.parametrize("role", ["reviewer", "auditor", "legal", "admin_user"])
def test_it_shows_every_role_the_integrity_status(request, login, role):
    ledger.append([Fact("test.fact")] * 3)
    create_checkpoint()
    page = login(request.getfixturevalue(role)).get(reverse("home")).content.decode()
    assert 'id="ledger-entries">3<' in page
    assert "tree size 3" in page


def test_it_shows_the_last_verification(login, auditor):
    from archive.verify import record_run, verify_ledger

    record_run(verify_ledger(), trigger="command")
    page = login(auditor).get(reverse("home")).content.decode()
    assert "Intact" in page
    assert "Last full verification" not in page  # the last run was the full one


def test_it_shows_the_last_full_verification_beside_an_incremental_one(login, auditor):
    from archive.verify import record_run, verify_ledger

    ledger.append([Fact("test.fact")] * 3)
    create_checkpoint()
    record_run(verify_ledger(), trigger="command")
    ledger.append([Fact("test.fact")] * 2)
    create_checkpoint()
    record_run(verify_ledger(incremental=True), trigger="schedule")
    page = login(auditor).get(reverse("home")).content.decode()
    shown = re.sub(r"\s+", " ", page)
    assert re.search(r'id="last-verification">.*Intact.*2 new entries \(from seq 3\)', shown)
    assert re.search(r'id="last-full-verification">.*Intact.*: 3 entries', shown)


@pytest.mark.parametrize(("role", "sees_key"), [("reviewer", False), ("auditor", True)])
def test_it_shows_the_verifier_key_to_evidence_roles(request, login, role, sees_key):
    page = login(request.getfixturevalue(role)).get(reverse("home")).content.decode()
    assert (verifier_key_text() in page) is sees_key


def test_it_serves_the_verifier_key_and_pem(login, auditor):
    text = login(auditor).get(reverse("public_key")).content.decode()
    assert text.startswith(verifier_key_text())
    assert "BEGIN PUBLIC KEY" in text


def test_it_opens_the_admin_to_administrators(login, admin_user):
    assert login(admin_user).get(reverse("admin:index")).status_code == 200


def test_it_keeps_staff_without_the_administrator_role_out_of_the_admin(login, reviewer):
    reviewer.is_staff = True
    reviewer.save(update_fields=["is_staff"])
    assert login(reviewer).get(reverse("admin:index")).status_code == 302


def test_it_changes_a_password(login, reviewer):
    client = login(reviewer)
    response = client.post(
        reverse("password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a much longer passphrase 42",
            "new_password2": "a much longer passphrase 42",
        },
    )
    assert response.status_code == 302
    reviewer.refresh_from_db()
    assert reviewer.check_password("a much longer passphrase 42")


def test_it_sends_security_headers(login, reviewer):
    response = login(reviewer).get(reverse("home"))
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("model", ["ledgerentry", "checkpoint", "verificationrun"])
def test_it_shows_the_evidence_read_only_in_the_admin(login, admin_user, model):
    ledger.append([Fact("test.fact")])
    create_checkpoint()
    client = login(admin_user)
    assert client.get(reverse(f"admin:archive_{model}_changelist")).status_code == 200
    assert client.get(reverse(f"admin:archive_{model}_add")).status_code == 403


def test_it_shows_times_in_the_firm_zone_with_utc_on_hover(login, auditor, settings):
    settings.TIME_ZONE = "Europe/Zurich"
    ledger.append([Fact("test.fact")])
    checkpoint = create_checkpoint()
    page = login(auditor).get(reverse("home")).content.decode()
    assert f'title="{checkpoint.created_at:%Y-%m-%d %H:%M:%S} UTC"' in page
