"""The one seam to Meta's Graph API: media lookups and downloads, media uploads and sends.

Tests point WHATSAPP_GRAPH_URL at a local HTTP server speaking Meta's response shapes. Only
the Graph host and Meta's media hosts are ever contacted; redirects are refused (a redirect to
another or a private address is how a fetcher gets turned against its own network); bodies are
capped and streamed; every call has a timeout.
"""

import hashlib
import ipaddress
import tempfile
from dataclasses import dataclass
from typing import IO, Any, cast
from urllib.parse import urlsplit

import httpx
from django.conf import settings

SPOOL_BYTES = 8 * 1024 * 1024  # a download past this spills to a temporary file


class GraphError(Exception):
    """A failed call; `permanent` when trying again cannot help: `gone` when Meta no longer
    serves the media (expired or unknown id), otherwise we refused it (redirect, host, size)."""

    def __init__(self, message: str, *, permanent: bool = False, gone: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent or gone
        self.gone = gone


@dataclass(frozen=True)
class Download:
    content: bytes | IO[bytes]  # from download(): a spooled temporary file, never all in memory
    sha256: str  # hex
    mime_type: str


def _graph_host() -> str:
    return urlsplit(settings.WHATSAPP_GRAPH_URL).hostname or ""


def host_listed(host: str, hosts: list[str]) -> bool:
    """`host` is one of `hosts`, where a leading dot admits subdomains (".fbcdn.net")."""
    host = host.lower()
    return any(
        host == h.lower().lstrip(".") or (h.startswith(".") and host.endswith(h.lower()))
        for h in hosts
    )


def allowed_url(url: str) -> bool:
    """Meta's hosts over https, or exactly the configured Graph host (a test server)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host and host == _graph_host():
        return parts.scheme in ("http", "https")
    if parts.scheme != "https" or not host:
        return False
    try:
        ipaddress.ip_address(host)
        return False  # Meta serves media by name, never from a bare address
    except ValueError:
        pass
    return host_listed(host, settings.WHATSAPP_MEDIA_HOSTS)


def _client() -> httpx.Client:
    timeout = httpx.Timeout(settings.WHATSAPP_HTTP_TIMEOUT, connect=5.0)
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def _check(response: httpx.Response, what: str) -> None:
    if response.is_redirect:
        raise GraphError(f"{what}: redirect refused", permanent=True)
    if response.status_code in (400, 404, 410):
        raise GraphError(f"{what}: HTTP {response.status_code}", gone=True)
    if response.status_code != 200:
        raise GraphError(f"{what}: HTTP {response.status_code}")


def media_info(media_id: str, token: str) -> dict[str, Any]:
    """GET /<media id>: a short-lived download URL, the MIME type, sha256 and size."""
    url = f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{media_id}"
    try:
        with _client() as client:
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise GraphError(f"media lookup failed: {type(exc).__name__}") from None
    _check(response, "media lookup")
    try:
        info = response.json()
    except ValueError:
        raise GraphError("media lookup answered something other than JSON") from None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        raise GraphError("media lookup answered without a url")
    return info


def download(url: str, token: str, max_bytes: int) -> Download:
    """Stream the file with the channel token, hashing as it comes, refusing what is too big."""
    if not allowed_url(url):
        raise GraphError("media URL is not on a Meta host", permanent=True)
    digest, size = hashlib.sha256(), 0
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned)
    try:
        with (
            _client() as client,
            client.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response,
        ):
            _check(response, "media download")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise GraphError(f"media larger than {max_bytes} bytes", permanent=True)
                digest.update(chunk)
                spool.write(chunk)
            mime = response.headers.get("content-type", "application/octet-stream")
    except httpx.HTTPError as exc:
        spool.close()
        raise GraphError(f"media download failed: {type(exc).__name__}") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return Download(cast(IO[bytes], spool), digest.hexdigest(), mime.split(";")[0].strip())


class SendError(GraphError):
    """Meta refused a send (`permanent`), or we could not tell whether it was accepted
    (`uncertain`: a timeout after the request went out; never resent automatically)."""

    def __init__(
        self, message: str, *, permanent: bool = False, uncertain: bool = False, body: Any = None
    ) -> None:
        super().__init__(message, permanent=permanent)
        self.uncertain = uncertain
        self.body = body


def _refusal(response: httpx.Response, what: str) -> SendError:
    """Meta's error object ({"error": {"code", "message", ...}}) as a SendError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    detail = ""
    if isinstance(error, dict):
        details = error.get("error_data", {}) if isinstance(error.get("error_data"), dict) else {}
        detail = f": {error.get('code', '')} {error.get('message', '')}".rstrip()
        if details.get("details"):
            detail += f" ({details['details']})"
    # 4xx other than 429 means this request will never succeed as it is; a 5xx may have come
    # after Meta accepted it (never resent: SendError.uncertain)
    permanent = 400 <= response.status_code < 500 and response.status_code != 429
    return SendError(
        f"{what}: HTTP {response.status_code}{detail}",
        permanent=permanent,
        uncertain=response.status_code >= 500,
        body=body,
    )


def send_message(phone_number_id: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST /{phone-number-id}/messages; Meta's answer ({"messages": [{"id": wamid}], ...})."""
    url = f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{phone_number_id}/messages"
    try:
        with _client() as client:
            response = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise SendError(f"send failed before reaching Meta: {type(exc).__name__}") from None
    except httpx.HTTPError as exc:  # the request may have arrived: never send it again
        raise SendError(f"send interrupted: {type(exc).__name__}", uncertain=True) from None
    if response.status_code != 200:
        raise _refusal(response, "send")
    try:
        answer = response.json()
        wamid = answer["messages"][0]["id"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise SendError("send accepted without a message id", uncertain=True) from None
    if not isinstance(wamid, str) or not wamid:
        raise SendError("send accepted without a message id", uncertain=True)
    return dict(answer)


def upload_media(
    phone_number_id: str, token: str, content: bytes, mime_type: str, filename: str
) -> str:
    """POST /{phone-number-id}/media (multipart); the media id to send by."""
    url = f"{settings.WHATSAPP_GRAPH_URL.rstrip('/')}/{phone_number_id}/media"
    try:
        with _client() as client:
            response = client.post(
                url,
                data={"messaging_product": "whatsapp", "type": mime_type},
                files={"file": (filename, content, mime_type)},
                headers={"Authorization": f"Bearer {token}"},
            )
    except httpx.HTTPError as exc:
        raise SendError(f"media upload failed: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise _refusal(response, "media upload")
    try:
        media_id = response.json()["id"]
    except (ValueError, KeyError, TypeError):
        raise SendError("media upload answered without an id") from None
    return str(media_id)
