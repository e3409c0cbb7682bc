"""The records and exports stores against the filesystem and a real S3-protocol server (moto's,
tests/s3.py): what is stored is read back verified, and the bucket itself enforces the lock."""

import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from archive import objectstore
from archive.objectstore import Corrupt, Refused
from archive.storage_config import storage_options
from tests.s3 import make_bucket, s3_client, store_url

BYTES = b"\x89PNG not really" * 1000
SHA = hashlib.sha256(BYTES).hexdigest()
NAME = f"media/{SHA[:2]}/{SHA}"


@pytest.fixture(params=["filesystem", "s3"])
def records(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> objectstore.Store:
    if request.param == "s3":
        request.getfixturevalue("worm_bucket")
    else:
        settings.MEDIA_ROOT = tmp_path
    return objectstore.records()


def test_it_reads_back_what_it_stored_verified(records: objectstore.Store) -> None:
    records.save_stream(NAME, io.BytesIO(BYTES))
    assert records.exists(NAME)
    with records.open_verified(NAME, SHA) as stored:
        assert stored.read() == BYTES
    assert b"".join(records.stream(NAME)) == BYTES


def test_it_never_hands_out_bytes_that_differ_from_their_hash(
    records: objectstore.Store,
) -> None:
    records.save_stream(NAME, io.BytesIO(BYTES[:-1] + b"!"))
    with pytest.raises(Corrupt, match="do not match their recorded SHA-256"):
        records.open_verified(NAME, SHA)


def test_it_streams_a_multipart_object_whole(worm_bucket: str) -> None:
    big = bytes(range(256)) * (40 * 1024 * 4)  # 40 MiB: five 8 MiB parts
    objectstore.records().save_stream("media/big", io.BytesIO(big))
    digest = hashlib.sha256()
    for chunk in objectstore.records().stream("media/big"):
        assert len(chunk) <= objectstore.CHUNK
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(big).hexdigest()


def test_the_bucket_refuses_to_delete_a_version_before_its_retain_until(worm_bucket: str) -> None:
    store = objectstore.records()
    store.save_stream(NAME, io.BytesIO(BYTES))
    store.retain(NAME, datetime.now(UTC) + timedelta(days=30))
    with pytest.raises(Refused, match="AccessDenied"):
        store.destroy(NAME)
    assert store.exists(NAME)


def test_a_legal_hold_blocks_deletion_until_it_is_released(worm_bucket: str) -> None:
    store = objectstore.records()
    store.save_stream(NAME, io.BytesIO(BYTES))
    store.retain(NAME, datetime.now(UTC) + timedelta(seconds=1))
    store.hold(NAME, on=True)
    time.sleep(1.5)
    with pytest.raises(Refused):
        store.destroy(NAME)
    store.hold(NAME, on=False)
    store.destroy(NAME)
    versions = s3_client(store.endpoint_url).list_object_versions(Bucket=worm_bucket)  # type: ignore[attr-defined]
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")


def test_destroy_removes_every_version_once_retention_ends(worm_bucket: str) -> None:
    store = objectstore.records()
    for _ in range(2):  # two workers storing the same bytes make two versions
        store.save_stream(NAME, io.BytesIO(BYTES))
    store.retain(NAME, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.5)
    store.destroy(NAME)
    assert not store.exists(NAME)
    client = s3_client(store.endpoint_url)  # type: ignore[attr-defined]
    assert not client.list_object_versions(Bucket=worm_bucket).get("Versions")


def test_it_describes_a_compliance_bucket_as_worm(worm_bucket: str) -> None:
    found = objectstore.records().describe()
    assert (found.kind, found.versioning, found.default_mode) == ("s3", "Enabled", "COMPLIANCE")
    assert found.worm and not found.problems


def test_it_names_what_a_bucket_without_a_lock_lacks(s3_server: str, settings: Any) -> None:
    bucket = make_bucket(s3_server, lock=False)
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", store_url(s3_server, bucket), "x"),
    }
    found = objectstore.records().describe()
    assert not found.worm
    assert found.problems == ["Object Lock is not enabled on the bucket"]


def test_it_says_an_unreachable_bucket_cannot_be_reached(settings: Any) -> None:
    url = "s3://nowhere?endpoint=http://127.0.0.1:9&addressing=path"
    settings.STORAGES = {**settings.STORAGES, "records": storage_options("STORAGE_URL", url, "x")}
    found = objectstore.records().describe()
    assert not found.reachable and not found.worm
    assert found.problems[0].startswith("the bucket cannot be reached")


def test_a_filesystem_store_says_it_enforces_nothing(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    found = objectstore.records().describe()
    assert (found.kind, found.where, found.worm) == ("filesystem", str(tmp_path), False)


def test_moto_still_lacks_what_the_code_does_not_rely_on(worm_bucket: str) -> None:
    """If this fails, moto gained the piece: tighten the tests that work around it."""
    store = objectstore.records()
    client = s3_client(store.endpoint_url)  # type: ignore[attr-defined]
    store.save_stream(NAME, io.BytesIO(BYTES))
    store.retain(NAME, datetime.now(UTC) + timedelta(days=2))
    store.retain(NAME, datetime.now(UTC) + timedelta(days=1))  # AWS refuses this; moto does not
    upload = client.create_multipart_upload(Bucket=worm_bucket, Key="m")
    part = client.upload_part(
        Bucket=worm_bucket, Key="m", UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
    )
    client.complete_multipart_upload(
        Bucket=worm_bucket,
        Key="m",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert "ObjectLockMode" not in client.head_object(Bucket=worm_bucket, Key="m")


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://bucket", "must start with s3:// or file://"),
        ("s3://key:secret@bucket", "credentials come from the environment"),
        ("s3://bucket?colour=red", "unknown parameter 'colour'"),
        ("s3://bucket?addressing=sideways", "addressing must be path or virtual"),
        ("file://relative/path", "must be file:///an/absolute/path"),
    ],
)
def test_it_refuses_a_storage_url_it_cannot_use(url: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=problem):
        storage_options("STORAGE_URL", url, "archive.objectstore.FileStore")


def test_it_reads_a_bucket_url_into_options() -> None:
    entry = storage_options(
        "STORAGE_URL", "s3://records/firm?endpoint=http://h:9000&region=eu-west-2", "x"
    )
    options = entry["OPTIONS"]
    assert entry["BACKEND"] == "archive.objectstore.S3Store"
    assert (options["bucket_name"], options["location"]) == ("records", "firm")
    assert (options["endpoint_url"], options["region_name"]) == ("http://h:9000", "eu-west-2")


def test_it_says_an_object_is_missing_rather_than_unreachable(
    records: objectstore.Store,
) -> None:
    with pytest.raises(objectstore.Missing):
        records.open_verified(NAME, SHA)
    with pytest.raises(objectstore.Missing):
        b"".join(records.stream(NAME))


def test_it_wraps_an_unreachable_bucket_in_a_store_error(settings: Any) -> None:
    url = "s3://nowhere?endpoint=http://127.0.0.1:9&addressing=path"
    settings.STORAGES = {**settings.STORAGES, "records": storage_options("STORAGE_URL", url, "x")}
    with pytest.raises(objectstore.StoreError, match="could not be reached"):
        objectstore.records().exists(NAME)


@pytest.mark.parametrize("call", ["retain", "hold", "destroy"])
def test_its_lock_calls_wrap_an_unreachable_bucket_in_a_store_error(
    settings: Any, call: str
) -> None:
    url = "s3://nowhere?endpoint=http://127.0.0.1:9&addressing=path"
    settings.STORAGES = {**settings.STORAGES, "records": storage_options("STORAGE_URL", url, "x")}
    store = objectstore.records()
    arguments = {"retain": (datetime.now(UTC),), "hold": (True,), "destroy": ()}[call]
    with pytest.raises(objectstore.StoreError, match="could not be reached"):
        getattr(store, call)(NAME, *arguments)
