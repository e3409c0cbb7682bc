"""A real S3-protocol server on loopback for the storage tests: moto in server mode (its
ThreadedMotoServer, an HTTP server speaking the S3 REST API), one per test session.

Fixtures (registered in tests/conftest.py):

- `s3_server`: the endpoint URL; AWS_* credentials for it are in the environment.
- `worm_bucket`: a fresh bucket per test, versioned, Object Lock enabled, default retention
  COMPLIANCE for 1 day, and settings.STORAGES["records"] pointing at it (an S3Store).
- `exports_bucket`: a fresh bucket per test without a lock, settings.STORAGES["exports"] on it.

What moto 5.2 lacks of Object Lock (measured; tests/archive/test_objectstore.py pins each):
it accepts a shorter COMPLIANCE retain-until (AWS refuses it), and a multipart upload gets no
lock at all, not even the bucket's default. The code never relies on either: it never
shortens (retention only lengthens), and it sets every record's retention explicitly.
"""

import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from archive.storage_config import storage_options

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def make_bucket(endpoint: str, *, lock: bool) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    client = s3_client(endpoint)
    if lock:
        client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        client.put_object_lock_configuration(
            Bucket=name,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
            },
        )
    else:
        client.create_bucket(Bucket=name)
    return name


def store_url(endpoint: str, bucket: str, prefix: str = "") -> str:
    return f"s3://{bucket}/{prefix}?endpoint={endpoint}&addressing=path".replace("/?", "?")


@pytest.fixture
def worm_bucket(s3_server: str, settings: Any) -> str:
    bucket = make_bucket(s3_server, lock=True)
    storages = dict(settings.STORAGES)
    storages["records"] = storage_options(
        "STORAGE_URL", store_url(s3_server, bucket), "archive.objectstore.FileStore"
    )
    settings.STORAGES = storages
    return bucket


@pytest.fixture
def exports_bucket(s3_server: str, settings: Any) -> str:
    bucket = make_bucket(s3_server, lock=False)
    storages = dict(settings.STORAGES)
    storages["exports"] = storage_options(
        "EXPORT_STORAGE_URL",
        store_url(s3_server, bucket, "exports"),
        "archive.objectstore.FileStore",
    )
    settings.STORAGES = storages
    return bucket
