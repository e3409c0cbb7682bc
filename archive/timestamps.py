"""RFC 3161 timestamps on checkpoints: proof from someone outside the database that a
checkpoint's note existed by a given time, so that history cannot be rewritten and re-signed
later without the times giving it away.

`obtain` (the `timestamp` duty, archive/anchoring.py) asks each TSA in TSA_URLS in turn for a
token over the SHA-256 of the whole note, with a fresh nonce and certReq, and keeps the first
token that verifies: granted, our imprint and nonce, signed by a certificate with the critical
timeStamping usage, valid at genTime and chaining to a root in TSA_CA_FILE, and genTime no
earlier than the checkpoint's time less TSA_TOLERANCE_SECONDS. Checkpoints are timestamped in
tree order (a newer one waits while an older one still waits for its token), so genTimes never
decrease with the tree size; `verify_tokens` checks all of it again for every stored token.

Tokens are kept as the DER TimeStampToken (the CMS ContentInfo). The certificates a TSA sends
with it are re-encoded as DER orders them (a SET OF is sorted by encoding; openssl sends them
in chain order, and the verifier, rfc3161-client, refuses unsorted sets); they are outside
what the TSA signed, so the signature is untouched.
"""

import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from asn1crypto import cms, tsp
from cryptography import x509
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from rfc3161_client import (
    HashAlgorithm,
    TimestampRequestBuilder,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from archive import anchoring
from archive.anchoring import AnchorFailure
from archive.chain_check import Problem
from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp

SHA256_OID = x509.ObjectIdentifier("2.16.840.1.101.3.4.2.1")

# What openssl's chain check says, in the words an operator or auditor needs.
CHAIN_FAULTS = {
    "unsuitable certificate purpose": "the signer's certificate is not for timestamping "
    "(no timeStamping extended key usage)",
    "certificate has expired": "the signer's certificate had expired at genTime",
    "certificate is not yet valid": "the signer's certificate was not yet valid at genTime",
    "self-signed certificate in certificate chain": "the signer does not chain to a root in "
    "TSA_CA_FILE (untrusted)",
    "unable to get local issuer certificate": "the signer does not chain to a root in "
    "TSA_CA_FILE (untrusted)",
}


class TokenRefused(Exception):
    """Why a TSA's reply or a stored token is not a timestamp of this note."""


def obtain(checkpoint: Checkpoint) -> CheckpointTimestamp:
    """The `timestamp` duty: a verified token for `checkpoint` from the first TSA that gives
    one, stored, and the duty to publish it. AnchorFailure names every TSA and its reason."""
    kept = checkpoint.timestamps.first()
    if kept is not None:  # done before: a duty run twice does nothing the second time
        return kept
    older = (
        AnchorTask.objects.filter(
            duty=AnchorTask.Duty.TIMESTAMP, checkpoint_id__lt=checkpoint.tree_size
        )
        .order_by("checkpoint_id")
        .values_list("checkpoint_id", flat=True)
        .first()
    )
    if older is not None:
        raise AnchorFailure(f"waits for checkpoint {older}'s timestamp (kept in tree order)")
    roots = _roots_or_failure()
    note = checkpoint.note.encode()
    not_before = checkpoint.created_at - timedelta(seconds=settings.TSA_TOLERANCE_SECONDS)
    reasons = []
    for url in settings.TSA_URLS:
        try:
            token = _request(url, note)
            gen_time = check_token(token, note, roots, not_before)
        except TokenRefused as refused:
            reasons.append(f"{url}: {refused}")
            continue
        stamp = CheckpointTimestamp.objects.create(
            checkpoint=checkpoint,
            token=token,
            tsa_url=url,
            gen_time=gen_time,
            received_at=timezone.now(),
        )
        anchoring.add_duty(checkpoint, AnchorTask.Duty.PUBLISH_TIMESTAMP)
        return stamp
    raise AnchorFailure("no timestamp: " + "; ".join(reasons or ["TSA_URLS is empty"]))


def _roots_or_failure() -> list[x509.Certificate]:
    try:
        return load_roots(settings.TSA_CA_FILE)
    except ValueError as problem:
        raise AnchorFailure(f"no timestamp: {problem}") from None


def load_roots(path: str | Path) -> list[x509.Certificate]:
    """The PEM certificates in TSA_CA_FILE; ValueError says what is wrong with it."""
    if not path:
        raise ValueError("TSA_CA_FILE is not set")
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"TSA_CA_FILE {path} cannot be read ({exc.strerror})") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"TSA_CA_FILE {path} holds no PEM certificates") from None


def _request(url: str, note: bytes) -> bytes:
    """Ask one TSA; its token (DER) if the reply is a granted one to our query."""
    query = (
        TimestampRequestBuilder()
        .data(note)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    try:
        reply = httpx.post(
            url,
            content=query.as_bytes(),
            headers={"Content-Type": "application/timestamp-query"},
            timeout=settings.TSA_TIMEOUT,
        )
    except httpx.TimeoutException:
        raise TokenRefused(f"no reply within {settings.TSA_TIMEOUT} s (timeout)") from None
    except httpx.HTTPError as exc:
        raise TokenRefused(f"unreachable ({type(exc).__name__})") from None
    if reply.status_code != 200:
        raise TokenRefused(f"HTTP {reply.status_code}")
    token = _granted_token(reply.content)
    nonce = decode_timestamp_response(_as_response(token)).tst_info.nonce
    if nonce != query.nonce:
        raise TokenRefused("wrong nonce: the reply answers another query")
    return token


def _granted_token(reply: bytes) -> bytes:
    try:
        response = tsp.TimeStampResp.load(reply, strict=True)
        status = response["status"]
        if status["status"].native not in ("granted", "granted_with_mods"):
            said = " ".join(status["status_string"].native or [])
            raise TokenRefused(f"the TSA refused: {status['status'].native} {said}".strip())
        return der_token(response["time_stamp_token"].dump())
    except (ValueError, TypeError, KeyError):
        raise TokenRefused("garbage: the reply is not an RFC 3161 TimeStampResp") from None


def der_token(token: bytes) -> bytes:
    """`token` with its certificate set in DER order (see the module docstring)."""
    info = cms.ContentInfo.load(token)
    signed = info["content"]
    if isinstance(signed["certificates"], cms.CertificateSet):
        signed["certificates"] = cms.CertificateSet(list(signed["certificates"]))
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def _as_response(token: bytes) -> bytes:
    """A granted TimeStampResp around a stored token, which is what the verifier takes."""
    status = tsp.PKIStatusInfo({"status": "granted"})
    response = tsp.TimeStampResp(
        {"status": status, "time_stamp_token": cms.ContentInfo.load(token)}
    )
    return bytes(response.dump())


def check_token(
    token: bytes, note: bytes, roots: list[x509.Certificate], not_before: datetime
) -> datetime:
    """Verify a token over `note`; its genTime. TokenRefused says what is wrong.

    Checked: the imprint is SHA-256(note); the CMS signature; the signer has the critical
    timeStamping usage, was valid at genTime and chains to `roots`; genTime >= not_before.
    """
    try:
        response = decode_timestamp_response(_as_response(token))
        imprint = response.tst_info.message_imprint
    except (ValueError, TypeError, KeyError):
        raise TokenRefused("not a timestamp token (it does not parse)") from None
    digest = hashlib.sha256(note).digest()
    if imprint.hash_algorithm != SHA256_OID or imprint.message != digest:
        raise TokenRefused("imprint differs from the note's SHA-256")
    try:
        VerifierBuilder(roots=list(roots)).build().verify(response, digest)
    except VerificationError as exc:
        raise TokenRefused(_plain(str(exc))) from None
    gen_time = response.tst_info.gen_time.astimezone(UTC)
    if gen_time < not_before:
        raise TokenRefused(
            f"genTime {_iso(gen_time)} is before the checkpoint was signed"
            f" ({_iso(not_before)} allowing TSA_TOLERANCE_SECONDS)"
        )
    return gen_time


def _plain(error: str) -> str:
    found = re.search(r"Verify error: ([^\"]+)", error)
    if found:
        return CHAIN_FAULTS.get(
            found.group(1), f"the signer's chain does not verify: {found.group(1)}"
        )
    if "EKU" in error:
        return CHAIN_FAULTS["unsuitable certificate purpose"]
    return f"the signature does not verify ({error.split(':')[0]})"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def verify_tokens(report: Any, stored: list[Any], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Check every stored token of every stored checkpoint (archive/verify.py) and say per
    checkpoint when it was timestamped and by whom, in report.anchors[size]["timestamp"].

    The nonce is not checked here: it only binds a reply to its query, at receipt.
    """
    tokens: dict[int, list[CheckpointTimestamp]] = {}
    for stamp in CheckpointTimestamp.objects.using(using).order_by("checkpoint_id", "gen_time"):
        tokens.setdefault(stamp.checkpoint_id, []).append(stamp)
    try:
        roots = load_roots(settings.TSA_CA_FILE)
    except ValueError as problem:
        roots = []
        if tokens:
            report.add(Problem(f"timestamp tokens cannot be checked: {problem}"))
    tolerance = timedelta(seconds=settings.TSA_TOLERANCE_SECONDS)
    latest: tuple[int, datetime] | None = None  # the newest genTime so far, in tree order
    for row in sorted(stored, key=lambda row: row.tree_size):
        verified = []
        for stamp in tokens.get(row.tree_size, []):
            gen_time = _verify_one(report, row, stamp, roots, tolerance)
            if gen_time is not None:
                verified.append(gen_time)
        if verified and latest is not None and min(verified) < latest[1]:
            report.add(
                Problem(
                    f"timestamped at {_iso(min(verified))}, earlier than checkpoint {latest[0]}"
                    f" (at {_iso(latest[1])}): a newer tree cannot be timestamped before an"
                    " older one",
                    checkpoint=row.tree_size,
                )
            )
        if verified and (latest is None or max(verified) > latest[1]):
            latest = (row.tree_size, max(verified))
        report.anchors.setdefault(row.tree_size, {})["timestamp"] = _summary(
            tokens.get(row.tree_size, []), verified, bool(roots)
        )


def _verify_one(
    report: Any,
    row: Any,
    stamp: CheckpointTimestamp,
    roots: list[x509.Certificate],
    tolerance: timedelta,
) -> datetime | None:
    if not roots:
        return None
    try:
        gen_time = check_token(
            bytes(stamp.token), row.note.encode(), roots, row.created_at - tolerance
        )
    except TokenRefused as refused:
        report.add(
            Problem(
                f"timestamp token from {stamp.tsa_url} does not verify: {refused}",
                checkpoint=row.tree_size,
            )
        )
        return None
    if gen_time != stamp.gen_time:
        report.add(
            Problem(
                f"timestamp token from {stamp.tsa_url} says {_iso(gen_time)}, its row says"
                f" {_iso(stamp.gen_time)}",
                checkpoint=row.tree_size,
            )
        )
    return gen_time


def _summary(stamps: list[CheckpointTimestamp], verified: list[datetime], checked: bool) -> str:
    if not stamps:
        return "none"
    said = ", ".join(f"{_iso(s.gen_time)} by {s.tsa_url}" for s in stamps)
    if not checked:
        return f"{said} (not checked: no TSA_CA_FILE)"
    if len(verified) < len(stamps):
        return f"{said} ({len(stamps) - len(verified)} of {len(stamps)} do not verify)"
    return said


@register("archive")
def check_tsa_roots(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not settings.TSA_URLS:
        return []
    try:
        load_roots(settings.TSA_CA_FILE)
    except ValueError as problem:
        return [
            Error(
                f"Timestamps cannot be verified: {problem}.",
                hint="Point TSA_CA_FILE at the PEM root (and intermediate) certificates of the"
                " TSAs in TSA_URLS.",
                id="archive.E004",
            )
        ]
    return []


@register("archive", deploy=True)
def check_tsa_configured(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if settings.TSA_URLS:
        return []
    return [
        Warning(
            "TSA_URLS is empty: checkpoints are not timestamped by anyone outside the archive,"
            " so nothing shows when a checkpoint was made.",
            hint="Set TSA_URLS to one or more RFC 3161 timestamp authorities and TSA_CA_FILE"
            " to their roots.",
            id="archive.W005",
        )
    ]
