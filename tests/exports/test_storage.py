"""Exports in an S3-protocol bucket (moto's server on loopback, tests/s3.py), media in a
compliance-locked records bucket: built by the job, downloaded through the portal and the API
from the bucket, removed at expiry; an unreachable bucket fails the export with its reason and
a retry succeeds once it is back; a bucket down at download time is a 503 with nothing
recorded; a tampered object is never served whole."""

import hashlib
import logging
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from archive.models import LedgerEntry
from archive.objectstore import Corrupt
from archive.storage_config import storage_options
from exports import jobs
from exports.models import Export
from exports.scope import Scope
from review.models import AccessEvent
from tests.exports.conftest import Rich
from tests.s3 import s3_client, store_url

State = Export.State


@pytest.fixture(autouse=True)
def buckets(worm_bucket: str, exports_bucket: str) -> str:
    """Both stores on buckets before the archive is built (its media go to the records one)."""
    return exports_bucket


def export_of(rich: Rich, user: Any, fmt: str) -> Export:
    return jobs.request_export(user, Scope.for_conversation(rich.conversation.pk), fmt, queue=False)


def stored(s3_server: str, bucket: str, export: Export) -> bytes:
    key = f"exports/{export.file_name}"
    body: bytes = s3_client(s3_server).get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def test_it_builds_serves_and_expires_an_export_in_the_bucket(
    rich: Rich, auditor: Any, client: Any, s3_server: str, buckets: str
) -> None:
    export = export_of(rich, auditor, "eml")  # a ZIP of emails with the media attached
    assert jobs.run_export(str(export.pk)) == State.DONE, Export.objects.get().error
    export.refresh_from_db()
    in_bucket = stored(s3_server, buckets, export)
    assert hashlib.sha256(in_bucket).hexdigest() == export.file_sha256
    client.force_login(auditor)
    portal = client.get(reverse("exports:download", args=[export.pk]))
    assert portal["Content-Length"] == str(export.file_size)
    assert b"".join(portal.streaming_content) == in_bucket
    api = APIClient()
    api.force_authenticate(auditor)
    assert (
        b"".join(api.get(f"/api/v1/exports/{export.pk}/download/").streaming_content) == in_bucket
    )
    assert jobs.expire_exports(timezone.now() + timedelta(days=8)) == 1
    assert "Contents" not in s3_client(s3_server).list_objects_v2(Bucket=buckets)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_it_fails_an_export_when_the_bucket_is_unreachable_and_retries_it(
    rich: Rich,
    auditor: Any,
    settings: Any,
    s3_server: str,
    buckets: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # boto3's retries would only slow the test
    reachable = settings.STORAGES["exports"]
    down = store_url(f"http://127.0.0.1:{closed_port()}", buckets, "exports")
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": storage_options("EXPORT_STORAGE_URL", down, "archive.objectstore.FileStore"),
    }
    export = export_of(rich, auditor, "csv")
    assert jobs.run_export(str(export.pk)) == State.FAILED
    export.refresh_from_db()
    assert "exports store could not take the finished file" in export.error
    assert "could not be reached" in export.error and not export.file_name
    settings.STORAGES = {**settings.STORAGES, "exports": reachable}
    assert jobs.retry(export)
    assert jobs.run_export(str(export.pk)) == State.DONE
    export.refresh_from_db()
    assert hashlib.sha256(stored(s3_server, buckets, export)).hexdigest() == export.file_sha256


def test_it_never_serves_a_tampered_export_whole(
    rich: Rich,
    auditor: Any,
    client: Any,
    s3_server: str,
    buckets: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    export = export_of(rich, auditor, "csv")
    jobs.run_export(str(export.pk))
    export.refresh_from_db()
    tampered = b"x" * (3 * 1024 * 1024)  # three chunks: two may be sent, never the last
    key = f"exports/{export.file_name}"
    s3_client(s3_server).put_object(Bucket=buckets, Key=key, Body=tampered)
    client.force_login(auditor)
    response = client.get(reverse("exports:download", args=[export.pk]))
    received = []
    with caplog.at_level(logging.ERROR), pytest.raises(Corrupt):
        for chunk in response.streaming_content:
            received.append(chunk)
    assert sum(map(len, received)) < len(tampered)
    assert "does not match its sealed SHA-256" in caplog.text
    assert "not served whole" in Export.objects.get(pk=export.pk).error


def test_it_answers_503_and_records_nothing_when_the_bucket_is_down_at_download(
    rich: Rich,
    auditor: Any,
    client: Any,
    settings: Any,
    buckets: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export = export_of(rich, auditor, "csv")
    jobs.run_export(str(export.pk))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    down = store_url(f"http://127.0.0.1:{closed_port()}", buckets, "exports")
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": storage_options("EXPORT_STORAGE_URL", down, "archive.objectstore.FileStore"),
    }
    client.force_login(auditor)
    assert client.get(reverse("exports:download", args=[export.pk])).status_code == 503
    assert not AccessEvent.objects.filter(action=AccessEvent.Action.DOWNLOAD_EXPORT).exists()
    assert not LedgerEntry.objects.filter(kind="export.downloaded").exists()


def test_it_answers_404_when_the_object_is_gone(
    rich: Rich, auditor: Any, client: Any, s3_server: str, buckets: str
) -> None:
    export = export_of(rich, auditor, "csv")
    jobs.run_export(str(export.pk))
    export.refresh_from_db()
    s3_client(s3_server).delete_object(Bucket=buckets, Key=f"exports/{export.file_name}")
    client.force_login(auditor)
    assert client.get(reverse("exports:download", args=[export.pk])).status_code == 404
