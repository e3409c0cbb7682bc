"""STORAGE_URL and EXPORT_STORAGE_URL → Django's STORAGES entries (read by settings.py, so this
module imports no models and nothing that needs configured settings).

    (unset)                                   the filesystem at MEDIA_ROOT / EXPORT_ROOT
    file:///var/lib/clientwindow/media        the filesystem at that path
    s3://BUCKET[/PREFIX][?endpoint=URL&region=R&addressing=path|virtual]

Credentials never go in the URL: boto3 reads them from the environment (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), a profile or the instance's role, as it always does.
"""

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

PART = 8 * 1024 * 1024  # multipart threshold and part size: memory per transfer is ~PART * THREADS
THREADS = 2
QUERY_KEYS = {"endpoint", "region", "addressing"}


def storage_options(name: str, url: str, filesystem: str) -> dict[str, Any]:
    """One STORAGES entry for the setting `name` (for its error messages) holding `url`;
    `filesystem` is the FileStore class used when it is unset or file://."""
    if not url:
        return {"BACKEND": filesystem}
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ImproperlyConfigured(f"{name} must be file:///an/absolute/path, not {url!r}")
        return {"BACKEND": filesystem, "OPTIONS": {"location": unquote(parts.path)}}
    if parts.scheme != "s3":
        raise ImproperlyConfigured(f"{name} must start with s3:// or file://, not {url!r}")
    if not parts.netloc or parts.username or parts.password:
        raise ImproperlyConfigured(
            f"{name} must be s3://BUCKET[/PREFIX]; credentials come from the environment"
            " (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), never the URL"
        )
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = sorted(set(query) - QUERY_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{name}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(QUERY_KEYS))})"
        )
    addressing = query.get("addressing", "")
    if addressing not in {"", "path", "virtual"}:
        raise ImproperlyConfigured(f"{name}: addressing must be path or virtual")
    from boto3.s3.transfer import TransferConfig

    options: dict[str, Any] = {
        "bucket_name": parts.netloc,
        "location": parts.path.strip("/"),
        "file_overwrite": True,  # names are content-addressed or unique: never renamed
        "default_acl": None,
        "querystring_auth": True,
        "max_memory_size": PART,  # reads spill to a temporary file past this
        "transfer_config": TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=THREADS
        ),
    }
    # s3transfer reads up to 10 parts of an upload ahead by default (80 MiB here): keep one
    # part uploading while the next is read. tests/performance/test_bench_storage.py measured
    # a 1 GB export's upload peak at 154 MB with 2 parts (over the 150 MB target), 147 MB with 1.
    options["transfer_config"].max_in_memory_upload_chunks = 1
    if query.get("endpoint"):
        options["endpoint_url"] = query["endpoint"]
    if query.get("region"):
        options["region_name"] = query["region"]
    if addressing:
        options["addressing_style"] = addressing
    return {"BACKEND": "archive.objectstore.S3Store", "OPTIONS": options}


def is_s3(entry: dict[str, Any]) -> bool:
    return str(entry.get("BACKEND", "")).endswith("S3Store")
