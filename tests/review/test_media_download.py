"""The portal's media download when the stored bytes are wrong or the store is down: never the
bytes, a page that says what happened, an ERROR naming ids only, no access event."""

import logging
from typing import Any

from django.urls import reverse

from archive.storage_config import storage_options
from messaging.models import Attachment
from review.models import AccessEvent
from tests.review.conftest import PNG

UNREACHABLE = "s3://x?endpoint=http://127.0.0.1:9&addressing=path"


def download(client: Any, user: Any, world: Any) -> Any:
    client.force_login(user)
    return client.get(reverse("review:media", args=[world.message("wamid.image").pk]))


def test_it_withholds_a_file_that_does_not_match_its_sealed_hash(
    client: Any, reviewer: Any, world: Any, settings: Any, caplog: Any
) -> None:
    stored = Attachment.objects.get(file__isnull=False).file
    (settings.MEDIA_ROOT / stored.storage_name).write_bytes(PNG[:-1] + b"!")
    with caplog.at_level(logging.ERROR, logger="review.views"):
        response = download(client, reviewer, world)
    assert response.status_code == 500
    assert b"does not match the SHA-256 sealed" in response.content
    assert PNG[:8] not in response.content
    assert f"media file {stored.pk} of message" in caplog.text
    assert not AccessEvent.objects.filter(action="download_media").exists()


def test_it_asks_to_try_again_when_the_store_is_unreachable(
    client: Any, reviewer: Any, world: Any, settings: Any, s3_server: str
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "records": storage_options("STORAGE_URL", UNREACHABLE, "archive.objectstore.FileStore"),
    }
    response = download(client, reviewer, world)
    assert (response.status_code, response["Retry-After"]) == (503, "60")
    assert b"cannot be reached; try again" in response.content


def test_it_says_a_file_missing_from_the_store_is_missing(
    client: Any, reviewer: Any, world: Any, settings: Any, caplog: Any
) -> None:
    stored = Attachment.objects.get(file__isnull=False).file
    (settings.MEDIA_ROOT / stored.storage_name).unlink()
    with caplog.at_level(logging.ERROR, logger="review.views"):
        response = download(client, reviewer, world)
    assert response.status_code == 500
    assert b"missing from the storage" in response.content
    assert f"media file {stored.pk} of message" in caplog.text
    assert not AccessEvent.objects.filter(action="download_media").exists()


def test_it_says_an_object_missing_from_the_bucket_is_missing(
    client: Any, reviewer: Any, world: Any, worm_bucket: str
) -> None:
    response = download(client, reviewer, world)  # the bucket is new: nothing was copied to it
    assert response.status_code == 500
    assert b"missing from the storage" in response.content
