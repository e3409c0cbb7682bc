"""Where the bytes outside PostgreSQL live: the records store and the exports store.

Two Django storages, named in settings.STORAGES and configured by STORAGE_URL and
EXPORT_STORAGE_URL (archive/storage_config.py):

- `records`: every archived file (media fetched from Meta, files staff send). Content-addressed:
  a file's name is derived from its SHA-256, so the same bytes are one object. In production an
  S3 bucket with Object Lock in COMPLIANCE mode: the bucket refuses to delete or overwrite a
  version before its retain-until date or while a legal hold is on it, whoever asks.
- `exports`: finished export files. No lock: exports expire.

Both are one of two classes with the same methods, so the code above never asks which it has:
`FileStore` (the filesystem: `make run`, a single machine; it enforces no lock and says so) and
`S3Store` (django-storages' S3 backend, boto3). Besides Django's Storage API each has:

- `save_stream(name, file)`: store a file object of any size (multipart upload on S3), in
  bounded memory;
- `stream(name)`: the bytes in chunks, in bounded memory;
- `open_verified(name, sha256)`: the bytes, checked against the SHA-256 recorded for them (a
  spooled temporary file; `Corrupt` if they differ, so nothing unverified is served);
- `retain(name, until)`, `hold(name, on)`: set the object's COMPLIANCE retention and legal
  hold on every version of it (S3 refuses to shorten compliance retention; `retain` never asks);
- `destroy(name)`: delete every version; the bucket's refusal raises `Refused`;
- `describe()`: what the store is and enforces, for `manage.py storage check` and the checks.

Errors reaching the store (unreachable, refused, credentials) raise `StoreError`, or its
subclasses `Refused`, `Missing` (no such object) and `Corrupt`, with a message fit for an
administrator; no message content is ever in one.
"""

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import IO, Any, Protocol, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from storages.backends.s3 import S3Storage

RECORDS = "records"
EXPORTS = "exports"
CHUNK = 1024 * 1024  # what stream() yields at a time
SPOOL = 8 * 1024 * 1024  # what open_verified() keeps in memory before it spills to disk
NO_CREDENTIALS = (
    "no AWS credentials were found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile"
    " or the host's role)"
)


class StoreError(Exception):
    """The store could not do what was asked: unreachable, misconfigured or refused."""


class Refused(StoreError):
    """The store refused: e.g. S3 Object Lock protecting a version before its retain-until."""


class Missing(StoreError):
    """The store has no object of that name (it was never stored, or was deleted outside us)."""


class Corrupt(StoreError):
    """The stored bytes do not match the SHA-256 recorded for them."""


@dataclass
class Description:
    """What a store is and what it enforces (manage.py storage check prints this)."""

    kind: str  # "filesystem" or "s3"
    where: str  # a path, or s3://bucket/prefix at the endpoint
    reachable: bool
    versioning: str = ""  # S3: "Enabled", "Suspended" or "" (never enabled)
    object_lock: bool = False
    default_mode: str = ""  # "COMPLIANCE", "GOVERNANCE" or ""
    default_days: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def worm(self) -> bool:
        """Does the store itself refuse to delete a record early (compliance-mode Object Lock)?"""
        return (
            self.reachable
            and self.object_lock
            and self.versioning == "Enabled"
            and self.default_mode == "COMPLIANCE"
        )


class Store(Protocol):
    """What the code above asks of `records()` and `exports()` (beside Django's Storage API)."""

    def exists(self, name: str) -> bool: ...
    def delete(self, name: str) -> None: ...
    def save_stream(self, name: str, content: IO[bytes]) -> None: ...
    def stream(self, name: str) -> Iterator[bytes]: ...
    def open_verified(self, name: str, sha256: str) -> IO[bytes]: ...
    def retain(self, name: str, until: datetime) -> None: ...
    def hold(self, name: str, on: bool) -> None: ...
    def destroy(self, name: str) -> None: ...
    def describe(self) -> Description: ...


def records() -> Store:
    return cast(Store, storages[RECORDS])


def exports() -> Store:
    return cast(Store, storages[EXPORTS])


def _verified_copy(source: IO[bytes], sha256: str, name: str) -> IO[bytes]:
    """Copy into a spooled temporary file while hashing; Corrupt when the digest differs."""
    copy = tempfile.SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 (handed to the caller)
    digest = hashlib.sha256()
    while chunk := source.read(CHUNK):
        digest.update(chunk)
        copy.write(chunk)
    if digest.hexdigest() != sha256:
        copy.close()
        raise Corrupt(f"{name}: the stored bytes do not match their recorded SHA-256")
    copy.seek(0)
    return cast(IO[bytes], copy)


class FileStore(FileSystemStorage):
    """The filesystem: one machine's disk. It enforces no retention or hold (describe() says so:
    a production deployment with STORAGE_REQUIRE_WORM refuses to start on it)."""

    def save_stream(self, name: str, content: IO[bytes]) -> None:
        if self.exists(name):
            self.delete(name)
        self.save(name, File(content))

    def stream(self, name: str) -> Iterator[bytes]:
        with self._opened(name) as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def open_verified(self, name: str, sha256: str) -> IO[bytes]:
        with self._opened(name) as handle:
            return _verified_copy(cast(IO[bytes], handle), sha256, name)

    def _opened(self, name: str) -> Any:
        try:
            return self.open(name, "rb")
        except FileNotFoundError:
            raise Missing(f"{name}: no such file in the store") from None
        except OSError as error:
            raise StoreError(f"{name}: the store cannot be read ({type(error).__name__})") from None

    def retain(self, name: str, until: datetime) -> None:
        """Nothing to set: a filesystem has no retention (PostgreSQL's rules still apply)."""

    def hold(self, name: str, on: bool) -> None:
        """Nothing to set: a filesystem has no legal hold (PostgreSQL's rules still apply)."""

    def destroy(self, name: str) -> None:
        self.delete(name)

    def describe(self) -> Description:
        problems = ["a filesystem enforces no retention: anyone with the disk can delete a file"]
        return Description("filesystem", str(self.location), reachable=True, problems=problems)


class ExportFileStore(FileStore):
    """The exports store on the filesystem: at EXPORT_ROOT unless given a location."""

    @cached_property
    def base_location(self) -> str:
        given = self.__dict__.get("_location")
        return str(self._value_or_setting(given, settings.EXPORT_ROOT))

    def _clear_cached_properties(self, setting: Any, **kwargs: Any) -> None:
        super()._clear_cached_properties(setting, **kwargs)
        if setting == "EXPORT_ROOT":
            self.__dict__.pop("base_location", None)
            self.__dict__.pop("location", None)


def _client_error(error: Exception, doing: str, name: str) -> StoreError:
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        text = f"{doing} {name}: the bucket said {code or 'no'}"
        if code in {"NoSuchKey", "404", "NoSuchVersion"}:
            return Missing(f"{doing} {name}: no such object in the bucket")
        if code in {"AccessDenied", "InvalidRequest", "ObjectLocked"}:
            return Refused(text)
        return StoreError(text)
    if isinstance(error, NoCredentialsError):
        return StoreError(f"{doing} {name}: {NO_CREDENTIALS}")
    return StoreError(f"{doing} {name}: the bucket could not be reached ({type(error).__name__})")


class S3Store(S3Storage):  # type: ignore[misc]
    """An S3-protocol bucket (AWS, Ceph RGW, MinIO) through django-storages and boto3."""

    @property
    def _client(self) -> Any:
        return self.connection.meta.client

    def _key(self, name: str) -> str:
        return cast(str, self._normalize_name(name))

    def _versions(self, name: str) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(name)
        found: list[str] = []
        pages = self._client.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket_name, Prefix=key
        )
        try:
            for page in pages:
                for version in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if version["Key"] == key:
                        found.append(version["VersionId"])
        except (ClientError, BotoCoreError) as error:
            raise _client_error(error, "listing the versions of", name) from error
        return found

    def _call(self, doing: str, name: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(Bucket=self.bucket_name, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise _client_error(error, doing, name) from error

    def exists(self, name: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bool(super().exists(name))
        except (ClientError, BotoCoreError) as error:
            raise _client_error(error, "looking for", name) from error

    def save_stream(self, name: str, content: IO[bytes]) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.upload_fileobj(
                content,
                self.bucket_name,
                self._key(name),
                ExtraArgs=self.get_object_parameters(name),
                Config=self.transfer_config,
            )
        except (ClientError, BotoCoreError) as error:
            raise _client_error(error, "storing", name) from error

    def stream(self, name: str) -> Iterator[bytes]:
        body = self._call("reading", name, "get_object", Key=self._key(name))["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def open_verified(self, name: str, sha256: str) -> IO[bytes]:
        body = self._call("reading", name, "get_object", Key=self._key(name))["Body"]
        try:
            return _verified_copy(cast(IO[bytes], body), sha256, name)
        finally:
            body.close()

    def retain(self, name: str, until: datetime) -> None:
        for version in self._versions(name):
            self._call(
                "retaining",
                name,
                "put_object_retention",
                Key=self._key(name),
                VersionId=version,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )

    def hold(self, name: str, on: bool) -> None:
        for version in self._versions(name):
            self._call(
                "holding" if on else "releasing",
                name,
                "put_object_legal_hold",
                Key=self._key(name),
                VersionId=version,
                LegalHold={"Status": "ON" if on else "OFF"},
            )

    def destroy(self, name: str) -> None:
        """Delete every version (a plain delete would only add a delete marker)."""
        for version in self._versions(name):
            self._call("deleting", name, "delete_object", Key=self._key(name), VersionId=version)

    def describe(self) -> Description:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        where = f"s3://{self.bucket_name}/{self.location}".rstrip("/")
        if self.endpoint_url:
            where += f" at {self.endpoint_url}"
        found = Description("s3", where, reachable=False)
        try:
            self._client.head_bucket(Bucket=self.bucket_name)
            found.reachable = True
            found.versioning = self._client.get_bucket_versioning(Bucket=self.bucket_name).get(
                "Status", ""
            )
            lock = self._client.get_object_lock_configuration(Bucket=self.bucket_name)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if not found.reachable:
                found.problems.append(f"the bucket cannot be reached: {code}")
            elif code == "ObjectLockConfigurationNotFoundError":
                found.problems.append("Object Lock is not enabled on the bucket")
            else:
                found.problems.append(f"the bucket's Object Lock cannot be read: {code}")
            return found
        except NoCredentialsError:
            found.problems.append(NO_CREDENTIALS)
            return found
        except EndpointConnectionError:
            found.problems.append("the bucket cannot be reached: nothing answers at the endpoint")
            return found
        except BotoCoreError as error:
            found.problems.append(f"the bucket cannot be reached: {type(error).__name__}")
            return found
        config = lock.get("ObjectLockConfiguration", {})
        found.object_lock = config.get("ObjectLockEnabled") == "Enabled"
        retention = config.get("Rule", {}).get("DefaultRetention", {})
        found.default_mode = retention.get("Mode", "")
        found.default_days = int(retention.get("Days") or 0) + 365 * int(
            retention.get("Years") or 0
        )
        if found.versioning != "Enabled":
            found.problems.append("versioning is not enabled")
        if not found.object_lock:
            found.problems.append("Object Lock is not enabled on the bucket")
        elif found.default_mode != "COMPLIANCE":
            found.problems.append(
                f"the default retention mode is {found.default_mode or 'not set'}, not COMPLIANCE"
            )
        return found
