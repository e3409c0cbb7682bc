"""The portal's import pages: who may upload, see, confirm, cancel and download a report; what a
bad upload or a bad mapping answers; the over-size upload refused before its body is read; and
what is recorded when they do."""

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone
from django_q.conf import Conf

from archive import ledger
from archive.envelope import Fact
from imports.forms import e164
from imports.models import ImportJob, ImportProblem
from imports.uploads import ChatUploadLimit
from imports.views import report_csv
from messaging import media
from messaging.models import Channel, ChatExport, Conversation, Participant
from review.models import AccessEvent

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "chat-exports"
CHAT = b"[20.06.19, 15:58:53] John: Hey\n[20.06.19, 15:58:57] Loris: Welcome to the chat!\n"
AUTHORS = [
    {"author": "Loris", "count": 20, "guess": None},
    {"author": "John", "count": 9, "guess": None},
    {"author": "\u200e+44 7700 900123", "count": 2, "guess": None},
]


@pytest.fixture
def channel(db: None, settings: Any, tmp_path: Path) -> Channel:
    settings.MEDIA_ROOT = tmp_path
    return Channel.objects.create(name="Desk", phone_number_id="1001", display_number="+44 20")


@pytest.fixture(autouse=True)
def jobs_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-q2 runs the queued analysis and import in the request thread."""
    monkeypatch.setattr(Conf, "SYNC", True)


def make_job(channel: Channel, user: Any, state: str = "ready", **fields: Any) -> ImportJob:
    """A job as the pipeline leaves it, built directly: its upload stored and sealed."""
    stored = media.store_file(CHAT + str(fields).encode(), "text/plain")
    details = {"phone_number_id": channel.phone_number_id, "custodian": "Loris"}
    (sealed,) = ledger.append([Fact("chat.export", details)])
    export = ChatExport.objects.create(
        channel=channel,
        file=stored,
        file_name="WhatsApp Chat - Example.zip",
        sha256=stored.sha256,
        size=stored.size,
        custodian="Loris",
        uploaded_by=user,
        uploaded_at=timezone.now(),
        time_zone="Europe/London",
        entry=sealed,
    )
    preview = {
        "entries": 31,
        "counts": {"text": 25, "system": 4, "attachment": 2},
        "first": [{"line": 5, "time": "2019-06-20 15:58:53", "author": "John", "text": "Hey"}],
        "last": [{"line": 40, "time": "2019-06-20 16:07:56", "author": "Loris", "text": "Bye"}],
        "authors": AUTHORS,
        "chat_name": "WhatsApp Chat Parser Example",
        "one_to_one": False,
        "missing": ["00000009-PHOTO.jpg"],
        "unreferenced": ["notes.pdf"],
    }
    defaults: dict[str, Any] = {
        "detected": {
            "platform": "ios",
            "shape": "[dd.mm.yy, HH:MM:SS]",
            "clock": "24h",
            "has_seconds": True,
            "calendar": "gregorian",
        },
        "date_order": "dmy",
        "date_order_evidence": "a first component of 20 (line 1)",
        "preview": preview,
        "lines_total": 40,
    }
    return ImportJob.objects.create(
        export=export, created_by=user, state=state, **(defaults | fields)
    )


def upload(client: Any, user: Any, on: Channel, name: str, content: bytes, **data: Any) -> Any:
    client.force_login(user)
    file = io.BytesIO(content)
    file.name = name
    form = {"channel": on.pk, "custodian": "Loris", "time_zone": "Europe/Paris", "file": file}
    return client.post(reverse("imports:create"), form | data)


def mapping_form(**data: str) -> dict[str, str]:
    form = {"chat_name": "Example", "as_0": "custodian", "as_1": "unknown", "as_2": "unknown"}
    return form | data


# --- Who may --------------------------------------------------------------------------------


def test_it_refuses_a_reviewer_without_the_permission(
    client: Any, channel: Channel, reviewer: Any
) -> None:
    client.force_login(reviewer)
    assert client.get(reverse("imports:create")).status_code == 403
    assert client.get(reverse("imports:list")).status_code == 403
    assert upload(client, reviewer, channel, "chat.txt", CHAT).status_code == 403
    assert not ChatExport.objects.exists()


def test_it_shows_legal_the_upload_form_in_the_firms_time_zone(
    client: Any, channel: Channel, legal: Any, settings: Any
) -> None:
    settings.TIME_ZONE = "Europe/London"
    client.force_login(legal)
    page = client.get(reverse("imports:create")).content.decode()
    assert '<option value="Europe/London" selected>' in page
    assert '<datalist id="custodians"><option value="lee">' in page
    assert 'href="/imports/"' in client.get(reverse("home")).content.decode()  # the nav link


def test_it_lets_a_reviewer_import_once_an_administrator_allows_it(
    client: Any, channel: Channel, reviewer: Any
) -> None:
    reviewer.user_permissions.add(Permission.objects.get(codename="import_chat"))
    client.force_login(reviewer)
    assert client.get(reverse("imports:create")).status_code == 200


@pytest.mark.parametrize("name", ["list", "detail", "confirm", "cancel", "report"])
def test_it_shows_nothing_to_outsiders(
    client: Any, channel: Channel, legal: Any, outsider: Any, auditor: Any, name: str
) -> None:
    job = make_job(channel, legal)
    url = reverse(f"imports:{name}", args=[] if name == "list" else [job.pk])
    post = name in ("confirm", "cancel")
    ask = client.post if post else client.get
    assert ask(url).status_code == 302  # to the login page
    client.force_login(outsider)
    assert ask(url).status_code == 403
    client.force_login(auditor)  # a role, but not this permission
    assert ask(url).status_code == 403
    job.refresh_from_db()
    assert job.state == "ready"


def test_it_hides_one_users_import_from_another(
    client: Any, channel: Channel, legal: Any, make_user: Any
) -> None:
    job = make_job(channel, legal)
    client.force_login(make_user("lou", "Legal"))
    assert client.get(reverse("imports:detail", args=[job.pk])).status_code == 404
    assert client.get(reverse("imports:report", args=[job.pk])).status_code == 404
    assert job.export.file_name not in client.get(reverse("imports:list")).content.decode()


def test_it_shows_administrators_every_import(
    client: Any, channel: Channel, legal: Any, admin_user: Any
) -> None:
    job = make_job(channel, legal)
    client.force_login(admin_user)
    assert client.get(reverse("imports:detail", args=[job.pk])).status_code == 200
    assert job.export.file_name in client.get(reverse("imports:list")).content.decode()


# --- Uploading ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "problem"),
    [
        ("chat.pdf", {}, "neither a .txt nor a .zip"),
        ("chat.txt", {"custodian": "   "}, "This field is required"),
        ("chat.txt", {"time_zone": "Mars/Olympus"}, "Select a valid choice"),
        ("chat.txt", {"channel": "999999"}, "Select a valid choice"),
    ],
)
def test_it_answers_a_bad_upload_with_400_and_why(
    client: Any, channel: Channel, legal: Any, name: str, data: dict[str, str], problem: str
) -> None:
    response = upload(client, legal, channel, name, CHAT, **data)
    assert response.status_code == 400
    assert problem in response.content.decode()
    assert not ChatExport.objects.exists()


def test_it_answers_an_empty_file_with_400(client: Any, channel: Channel, legal: Any) -> None:
    response = upload(client, legal, channel, "chat.txt", b"")
    assert response.status_code == 400
    assert "The submitted file is empty" in response.content.decode()


def test_it_answers_an_over_size_upload_with_413(
    client: Any, channel: Channel, legal: Any, settings: Any
) -> None:
    settings.CHAT_IMPORT_MAX_BYTES = 1000
    response = upload(client, legal, channel, "chat.txt", b"x" * 100_000)
    assert response.status_code == 413
    assert "larger than the 1000\xa0bytes an import may be" in response.content.decode()
    assert not ChatExport.objects.exists()


def test_it_refuses_an_over_size_upload_before_reading_a_byte(settings: Any) -> None:
    settings.CHAT_IMPORT_MAX_BYTES = 1000

    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body was read")

    request = RequestFactory().generic(
        "POST",
        reverse("imports:create"),
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH="2000000000",
    )
    request.META["wsgi.input"] = Unreadable()
    response = ChatUploadLimit(lambda r: HttpResponse("read"))(request)
    assert response.status_code == 413


def test_it_refuses_an_upload_without_a_length_before_reading_a_byte() -> None:
    class Unreadable(io.RawIOBase):
        def read(self, size: int = -1) -> bytes:
            raise AssertionError("the body was read")

    request = RequestFactory().generic(
        "POST", reverse("imports:create"), content_type="multipart/form-data; boundary=x"
    )
    request.META.pop("CONTENT_LENGTH", None)  # a chunked upload declares none
    request.META["wsgi.input"] = Unreadable()
    response = ChatUploadLimit(lambda r: HttpResponse("read"))(request)
    assert response.status_code == 411
    assert "Content-Length" in response.content.decode()


def test_it_streams_an_upload_to_disk(settings: Any) -> None:
    seen: list[HttpRequest] = []
    limit = ChatUploadLimit(lambda r: seen.append(r) or HttpResponse())
    limit(RequestFactory().post(reverse("imports:create"), {"custodian": "Loris"}))
    (request,) = seen
    assert [type(h) for h in request.upload_handlers] == [TemporaryFileUploadHandler]


def test_it_stores_seals_and_reads_an_upload(
    client: Any, channel: Channel, legal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the analysis, queued after commit
        response = upload(client, legal, channel, "WhatsApp Chat with John.txt", CHAT)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("imports:detail", args=[job.pk])
    assert (job.created_by, job.export.custodian, job.export.time_zone) == (
        legal,
        "Loris",
        "Europe/Paris",
    )
    assert job.state in ("ready", "needs_date_order")  # analysed inline (SYNC)
    event = AccessEvent.objects.get(action="upload_chat_export")
    assert event.object_id == str(job.pk) and event.detail["sha256"] == job.export.sha256


def test_it_imports_a_zip_through_the_portal(
    client: Any, channel: Channel, legal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    name = "whatsapp-chat-parser-website__example.zip"
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, legal, channel, name, (FIXTURES / name).read_bytes())
    job = ImportJob.objects.get()
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert job.state == "ready" and '<th scope="row">Emily</th>' in page
    at = [a["author"] for a in job.preview["authors"]].index  # the form's fields are numbered
    form = {
        f"as_{at('Loris')}": "custodian",
        f"as_{at('John')}": "unknown",
        f"as_{at('Emily')}": "number",
        f"number_{at('Emily')}": "+44 7700 900456",
        "chat_name": "Example",
    }
    with django_capture_on_commit_callbacks(execute=True):  # the import, queued after commit
        response = client.post(reverse("imports:confirm", args=[job.pk]), form)
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == "done" and job.counts["created"] > 30
    emily = job.mapping["Emily"]
    assert Participant.objects.get(pk=emily["id"]).wa_id == "447700900456"
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert reverse("review:conversation", args=[job.conversation_id]) in page


def test_it_shows_why_a_file_is_refused_with_its_line(
    client: Any, channel: Channel, legal: Any, django_capture_on_commit_callbacks: Any
) -> None:
    bad = b"[20.06.19, 15:58:53] John: Hey\n\xff\xfe not UTF-8\n"
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, legal, channel, "chat.txt", bad)
    page = client.get(response["Location"]).content.decode()
    assert ImportJob.objects.get().state == "refused"
    assert "Refused" in page and "chat.txt" in page and "line 2" in page
    assert 'id="confirm"' not in page


# --- The preview ----------------------------------------------------------------------------


def test_it_shows_the_preview_and_preselects_the_custodian(
    client: Any, channel: Channel, legal: Any
) -> None:
    job = make_job(channel, legal)
    client.force_login(legal)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "[dd.mm.yy, HH:MM:SS]" in page and "day/month/year" in page
    assert "a first component of 20 (line 1)" in page
    assert "attachment 2" in page and "00000009-PHOTO.jpg" in page and "notes.pdf" in page
    assert '<option value="custodian" selected>' in page  # Loris, the custodian
    assert 'value="+447700900123"' in page  # an author written as a number
    assert 'name="date_order"' not in page  # decided from the file
    assert AccessEvent.objects.filter(action="view_import", object_id=str(job.pk)).exists()


def test_it_asks_for_the_date_order_when_the_file_cannot_tell(
    client: Any, channel: Channel, legal: Any
) -> None:
    job = make_job(channel, legal, state="needs_date_order", date_order="")
    client.force_login(legal)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "cannot be decided from the file" in page and 'name="date_order"' in page
    response = client.post(reverse("imports:confirm", args=[job.pk]), mapping_form())
    assert response.status_code == 400
    assert "Choose the date order" in response.content.decode()


def test_it_shows_the_first_hundred_warnings_and_counts_the_rest(
    client: Any, channel: Channel, legal: Any
) -> None:
    job = make_job(channel, legal)
    ImportProblem.objects.bulk_create(
        ImportProblem(job=job, line=n, kind="flag", problem=f"problem {n}") for n in range(1, 131)
    )
    client.force_login(legal)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "problem 100<" in page and "problem 101<" not in page
    assert "and 30 more" in page


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"as_1": "number", "number_1": "07700 900123"}, "not a full international number"),
        ({"as_1": "number", "number_1": "+0 7700"}, "not a full international number"),
        ({"as_1": "participant", "participant_1": "+4915112345678"}, "No participant of"),
        ({"as_1": "boss"}, "Select a valid choice"),
        ({"chat_name": ""}, "This field is required"),
    ],
)
def test_it_answers_a_bad_mapping_with_400_and_why(
    client: Any, channel: Channel, legal: Any, data: dict[str, str], problem: str
) -> None:
    job = make_job(channel, legal)
    client.force_login(legal)
    response = client.post(reverse("imports:confirm", args=[job.pk]), mapping_form(**data))
    assert response.status_code == 400
    assert problem in response.content.decode()
    job.refresh_from_db()
    assert job.state == "ready"


def test_it_maps_an_author_to_a_participant_the_channel_knows(channel: Channel, legal: Any) -> None:
    from imports.forms import ConfirmForm

    (entry,) = ledger.append([Fact("participant", {"wa_id": "447700900123"})])
    known = Participant.objects.create(key="wa:447700900123", wa_id="447700900123", entry=entry)
    (entry,) = ledger.append([Fact("conversation", {"phone_number_id": "1001"})])
    Conversation.objects.create(channel=channel, key=known.key, participant=known, entry=entry)
    job = make_job(channel, legal)
    participants = Participant.objects.all()
    form = ConfirmForm(job=job, participants=participants)
    assert form["as_2"].initial == "participant"  # written as its number in the export
    data = mapping_form(as_1="number", number_1="+44 (7700) 900-123")
    form = ConfirmForm(data, job=job, participants=participants)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["mapping"] == {
        "Loris": {"as": "custodian"},
        "John": {"as": "participant", "id": known.pk},  # not new after all
        "\u200e+44 7700 900123": {"as": "unknown"},
    }


def test_it_reads_numbers_as_people_write_them() -> None:
    assert e164("\u200e+44\u00a07700 900123") == "+447700900123"
    assert e164("0044 7700 900123") == "+447700900123"


def test_it_refuses_to_confirm_a_job_past_its_preview(
    client: Any, channel: Channel, legal: Any
) -> None:
    job = make_job(channel, legal, state="done", counts={"created": 31})
    client.force_login(legal)
    response = client.post(reverse("imports:confirm", args=[job.pk]), mapping_form())
    assert response.status_code == 302
    assert "nothing to confirm" in client.get(response["Location"]).content.decode()


# --- Progress, cancel, report ---------------------------------------------------------------


def test_it_polls_the_progress_while_running_and_reloads_when_done(
    client: Any, channel: Channel, legal: Any
) -> None:
    job = make_job(channel, legal, state="running", lines_done=10)
    client.force_login(legal)
    url = reverse("imports:detail", args=[job.pk])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page and "line 10 of 40" in page and "Cancel" in page
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert '<section id="progress"' in fragment and "<h1>" not in fragment
    ImportJob.objects.filter(pk=job.pk).update(state="done")
    assert client.get(url, headers={"HX-Request": "true"})["HX-Refresh"] == "true"


def test_it_shows_the_final_report_and_the_conversation(
    client: Any, channel: Channel, legal: Any
) -> None:
    (entry,) = ledger.append([Fact("conversation", {"phone_number_id": "1001"})])
    chat = Conversation.objects.create(channel=channel, key="export:Example", entry=entry)
    counts = {"created": 28, "linked": 3, "skipped": 0}
    job = make_job(channel, legal, state="done", counts=counts, conversation=chat)
    client.force_login(legal)
    page = client.get(reverse("imports:detail", args=[job.pk])).content.decode()
    assert "<dd>28</dd>" in page and "<dd>3</dd>" in page
    assert reverse("review:conversation", args=[chat.pk]) in page
    assert reverse("imports:report", args=[job.pk]) in page


@pytest.mark.parametrize(("state", "after"), [("ready", "cancelled"), ("running", "cancelling")])
def test_it_cancels_with_one_call_and_no_form(
    client: Any, channel: Channel, legal: Any, state: str, after: str
) -> None:
    job = make_job(channel, legal, state=state)
    client.force_login(legal)
    response = client.post(reverse("imports:cancel", args=[job.pk]))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.state == after


def test_it_downloads_the_report_as_csv(client: Any, channel: Channel, legal: Any) -> None:
    job = make_job(channel, legal, state="done")
    ImportProblem.objects.create(job=job, line=7, kind="impossible-time", problem="00:08 a. m.")
    client.force_login(legal)
    response = client.get(reverse("imports:report", args=[job.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["line", "kind", "problem"]
    assert ["7", "impossible-time", "00:08 a. m."] in rows
    assert AccessEvent.objects.filter(action="download_import_report").exists()


def test_it_keeps_formulas_out_of_the_report() -> None:
    text = "".join(report_csv([(3, "text", "=HYPERLINK(1)"), (None, "zip", "-1")]))
    assert text.startswith("\ufeffline,kind,problem\r\n")
    assert "3,text,'=HYPERLINK(1)\r\n" in text and ",zip,'-1\r\n" in text
