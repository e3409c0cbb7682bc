"""`manage.py storage check` and `storage migrate` against a real S3-protocol server (moto's,
tests/s3.py) and media files on a temporary MEDIA_ROOT."""

import hashlib
import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from archive import objectstore
from archive.models import LedgerEntry
from messaging.media import store_file
from messaging.models import MediaFile
from tests.s3 import make_bucket

pytestmark = pytest.mark.django_db
BLOBS = [f"photo {n} ".encode() * 500 for n in range(3)]


def storage(*args: str) -> str:
    out = StringIO()
    call_command("storage", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.fixture
def on_disk(worm_bucket: str, settings: Any, tmp_path: Path) -> list[MediaFile]:
    """Three media files stored on the filesystem at MEDIA_ROOT, with the bucket configured."""
    settings.MEDIA_ROOT = tmp_path
    bucket = settings.STORAGES
    settings.STORAGES = {**bucket, "records": {"BACKEND": "archive.objectstore.FileStore"}}
    files = [store_file(blob, "image/png") for blob in BLOBS]
    settings.STORAGES = bucket
    return files


def migrated() -> list[dict[str, Any]]:
    entries = LedgerEntry.objects.filter(kind="storage.migrated")
    return [json.loads(bytes(entry.envelope)) for entry in entries]


def test_it_describes_both_stores(worm_bucket: str) -> None:
    out = storage("check")
    assert f"records: s3 s3://{worm_bucket}" in out
    assert "Object Lock: enabled, default COMPLIANCE for 1 days" in out
    assert "WORM:        yes" in out
    assert "exports: filesystem" in out


def test_it_passes_the_worm_requirement_on_a_compliance_bucket(worm_bucket: str) -> None:
    assert "WORM:        yes" in storage("check", "--require-worm")


def test_it_fails_the_worm_requirement_on_the_filesystem(settings: Any, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path
    settings.STORAGE_REQUIRE_WORM = True
    with pytest.raises(CommandError, match="a filesystem enforces no retention"):
        storage("check")


def test_it_fails_the_worm_requirement_on_an_unlocked_bucket(s3_server: str, settings: Any) -> None:
    bucket = make_bucket(s3_server, lock=False)
    settings.STORAGES = {
        **settings.STORAGES,
        "records": {
            "BACKEND": "archive.objectstore.S3Store",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": s3_server,
                "addressing_style": "path",
            },
        },
    }
    with pytest.raises(CommandError, match="Object Lock is not enabled"):
        storage("check", "--require-worm")


def test_it_copies_every_media_file_to_the_bucket_and_seals_the_move(
    on_disk: list[MediaFile], worm_bucket: str, s3_server: str, tmp_path: Path
) -> None:
    out = storage("migrate")
    assert "3 files: 3 copied, 0 already there" in out
    for media, blob in zip(on_disk, BLOBS, strict=True):
        with objectstore.records().open_verified(media.storage_name, media.sha256) as stored:
            assert stored.read() == blob
    (entry,) = migrated()
    assert (entry["copied"], entry["present"], entry["corrupt"]) == (3, 0, 0)
    assert (entry["from"], entry["to"]) == (str(tmp_path), f"s3://{worm_bucket} at {s3_server}")


def test_it_copies_nothing_the_second_time(on_disk: list[MediaFile], worm_bucket: str) -> None:
    storage("migrate")
    out = storage("migrate")
    assert "3 files: 0 copied, 3 already there (re-read and verified)" in out
    assert len(migrated()) == 1


def test_it_reports_and_skips_a_file_whose_bytes_changed(
    on_disk: list[MediaFile], worm_bucket: str, tmp_path: Path
) -> None:
    (tmp_path / on_disk[1].storage_name).write_bytes(b"tampered")
    with pytest.raises(CommandError, match="1 files were not copied"):
        storage("migrate")
    assert not objectstore.records().exists(on_disk[1].storage_name)
    assert objectstore.records().exists(on_disk[2].storage_name)
    (entry,) = migrated()
    assert (entry["copied"], entry["corrupt"]) == (2, 1)


def test_it_copies_and_seals_nothing_in_a_dry_run(
    on_disk: list[MediaFile], worm_bucket: str
) -> None:
    assert "3 files: 3 to copy" in storage("migrate", "--dry-run")
    assert not objectstore.records().exists(on_disk[0].storage_name)
    assert migrated() == []


def test_it_reads_from_the_path_given(
    on_disk: list[MediaFile], worm_bucket: str, settings: Any, tmp_path: Path
) -> None:
    settings.MEDIA_ROOT = tmp_path / "elsewhere"
    storage("migrate", "--from", f"file://{tmp_path}")
    sha = hashlib.sha256(BLOBS[0]).hexdigest()
    assert objectstore.records().exists(f"media/{sha[:2]}/{sha}")
