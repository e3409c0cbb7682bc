"""The PAdES signature on PDF transcripts: who produced the file, and that it is unchanged since.

exports/pdf.py renders and joins the PDF/A-3b transcript, then `sign` adds, as incremental
updates that leave every byte of the rendered file in place:

1. a certification signature (DocMDP: no changes allowed) by the firm's certificate
   (TRANSCRIPT_SIGNING_CERT_FILE, _KEY_FILE, _CHAIN_FILE), with a signature timestamp from the
   first timestamp authority in TSA_URLS that answers (PAdES B-T);
2. a document security store holding the certificates needed to check the signature and the
   timestamps later, and a document timestamp over all of it (B-LT, then B-LTA).

Nothing is fetched: the validation data is the certificates we were given (the signer's chain,
TSA_CA_FILE, those inside the timestamp tokens). CRLs and OCSP answers would need the network,
so the security store has none; a private or self-signed chain has none to give anyway.

PDF/A-3b survives because nothing before the signature changes: pyHanko's writers would set
their own producer and modification date in /Info and the XMP packet (and not the same
producer in both, which PDF/A forbids), so ours keep the rendered metadata as it is, and the
catalog stays at PDF 1.7 (pyHanko raises it to 2.0 for ECDSA keys). The signature field is
invisible, which PDF/A allows without an appearance.

If signing is configured it must happen: a key that does not load, a certificate that does not
chain, or timestamp authorities that all fail end the export with the reason, rather than
deliver a transcript weaker than the ones before it. With TSA_URLS empty the signature has no
trusted time (PAdES B-B), and the cover says so. With no certificate configured the transcript
is unsigned, the cover says so, and `check --deploy` warns (exports.W001).
"""

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed448, ed25519, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from pyhanko.keys import load_certs_from_pemder, load_private_key_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.sign import fields, signers
from pyhanko.sign.general import SigningError as PyHankoSigningError
from pyhanko.sign.signers import constants
from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import PathError, ValidationError
from pyhanko_certvalidator.registry import SimpleCertificateStore

FIELD = "Transcript"  # the certification signature's field
ARCHIVE_FIELD = "TranscriptArchiveTimestamp"  # the document timestamp's field (B-LTA)
DIGEST = "sha256"
LOCAL_SUBJECT = "ClientWindow local test signer \u2014 NOT A FIRM'S CERTIFICATE"
KEY_USAGE = {"digital_signature", "non_repudiation"}  # either will do
LOCAL_DAYS = 3650


class SigningError(RuntimeError):
    """Signing is configured but cannot be done: the export fails with this reason."""


@dataclass(frozen=True)
class Signing:
    """The signer of transcripts, loaded from the configured files."""

    signer: signers.SimpleSigner
    certificate: x509.Certificate
    trusted: list[asn1_x509.Certificate]  # what the signer's and TSAs' chains end in
    local: bool  # the self-signed certificate local runs create: not the firm's identity

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def load() -> Signing | None:
    """The configured signer, or None when transcripts are not signed. Local runs create a
    self-signed certificate on first use. Raises SigningError when the files are unusable."""
    cert_file = settings.TRANSCRIPT_SIGNING_CERT_FILE
    key_file = settings.TRANSCRIPT_SIGNING_KEY_FILE
    if not cert_file or not key_file:
        return None
    if settings.TRANSCRIPT_SIGNING_AUTOCREATE and not Path(cert_file).exists():
        create_local_pair(Path(cert_file), Path(key_file))
    password = settings.TRANSCRIPT_SIGNING_KEY_PASSWORD.encode() or None
    try:
        pem = Path(cert_file).read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
        (signing_cert,) = _certs([cert_file])
        key = load_private_key_from_pemder(key_file, passphrase=password)
        chain = _certs([settings.TRANSCRIPT_SIGNING_CHAIN_FILE])
        tsa_roots = _certs([settings.TSA_CA_FILE])
    except (OSError, ValueError, TypeError) as problem:
        raise SigningError(
            f"the transcript signing certificate or key cannot be read: {problem}"
        ) from problem
    _check_key(certificate, serialization.load_der_private_key(key.dump(), None))
    self_signed = certificate.issuer == certificate.subject
    return Signing(
        signer=signers.SimpleSigner(
            signing_cert=signing_cert,
            signing_key=key,
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        ),
        certificate=certificate,
        # The operator vouches for the chain it configured: every certificate in it (and the
        # signing certificate when it is its own issuer) may end a path, as may TSA_CA_FILE's.
        trusted=[*chain, *tsa_roots, *([signing_cert] if self_signed else [])],
        local=bool(settings.TRANSCRIPT_SIGNING_AUTOCREATE) and _is_local(certificate),
    )


def _certs(files: Iterable[str]) -> list[asn1_x509.Certificate]:
    return list(load_certs_from_pemder([f for f in files if f]))  # type: ignore[no-untyped-call]


def _check_key(certificate: x509.Certificate, key: Any) -> None:
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise SigningError(
            "the transcript signing key is EdDSA, which PDF 1.7 (and so PDF/A-3) cannot carry:"
            " use an RSA or ECDSA certificate"
        )
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*public) != certificate.public_key().public_bytes(*public):
        raise SigningError("the transcript signing key does not belong to its certificate")


def _is_local(certificate: x509.Certificate) -> bool:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return [n.value for n in names] == [LOCAL_SUBJECT]


def create_local_pair(cert_file: Path, key_file: Path) -> None:
    """A self-signed RSA certificate and its key (mode 0600) for local runs. RSA, not ECDSA:
    pyHanko marks ECDSA signatures as PDF 2.0, and the transcript must stay PDF 1.7."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOCAL_SUBJECT)])
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        ("key_encipherment", "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
         "encipher_only", "decipher_only"), False)  # fmt: skip
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LOCAL_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=True, **usage), critical=True
        )
        .sign(key, hashes.SHA256())
    )
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Key first, then the certificate by rename: a process that sees the certificate finds its
    # key; two that create at once each write a whole pair, and the last rename wins both.
    _write_new(key_file, key_pem, 0o600)
    _write_new(cert_file, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    part = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    part.replace(path)


def describe(signing: Signing | None) -> str:
    """What the cover says about the signature, decided before it is made."""
    if signing is None:
        return "Not signed: no signing certificate is configured for this archive."
    timed = (
        "with a timestamp from an RFC 3161 timestamp authority, its certificates embedded"
        " and the whole sealed by a document timestamp (PAdES B-LTA)"
        if settings.TSA_URLS
        else "without a trusted timestamp: no timestamp authority is configured (PAdES B-B)"
    )
    if signing.local:
        return (
            "Signed with a self-signed local test certificate: not evidence of the firm's"
            f" identity. Signer {signing.subject}, {timed}."
        )
    issuer = signing.certificate.issuer.rfc4514_string()
    return f"Signed by {signing.subject} (certificate issued by {issuer}), {timed}."


# --------------------------------------------------------------------------- signing


class _Writer(IncrementalPdfFileWriter):
    """An incremental update that leaves /Info and the XMP packet as the renderer wrote them.
    pyHanko's maintainer suggests this override (pyHanko issue #223)."""

    def _update_meta(self) -> None:
        pass


class _Signer(signers.PdfSigner):
    """PAdES in PDF 1.7: the ESIC extension only, never the PDF 2.0 ones pyHanko adds for
    ECDSA (PDF/A-3 is PDF 1.7; Acrobat and poppler verify ECDSA in 1.7 files)."""

    def register_extensions(self, pdf_out: BasePdfFileWriter, *, md_algorithm: str) -> None:
        pdf_out.ensure_output_version(version=(1, 7))  # type: ignore[no-untyped-call]
        pdf_out.register_extension(constants.ESIC_EXTENSION_1)


def sign(unsigned: Path, signed: Path, signing: Signing) -> None:
    """Write `signed`: `unsigned` with a certification signature and, when TSA_URLS is set,
    its timestamp, the validation certificates and a document timestamp."""
    context = ValidationContext(trust_roots=signing.trusted, allow_fetching=False)
    failures = []
    timestampers: list[HTTPTimeStamper | None] = [*_timestampers()] or [None]
    for timestamper in timestampers:
        try:
            with unsigned.open("rb") as source, signed.open("w+b") as out:
                _certify(source, out, signing, context, timestamper)
                if timestamper is not None:
                    _seal(out, signing, timestamper)
            return
        except (TimestampRequestError, OSError) as problem:
            failures.append(f"{timestamper.url if timestamper else 'signing'}: {problem}")
        except (PyHankoSigningError, PathError, ValidationError) as problem:
            raise SigningError(f"the transcript could not be signed: {problem}") from problem
    raise SigningError(
        "no timestamp authority answered, so the transcript was not signed: " + "; ".join(failures)
    )


def _timestampers() -> list[HTTPTimeStamper]:
    return [HTTPTimeStamper(url, timeout=settings.TSA_TIMEOUT) for url in settings.TSA_URLS]


def _certify(
    source: IO[bytes],
    out: IO[bytes],
    signing: Signing,
    context: ValidationContext,
    timestamper: HTTPTimeStamper | None,
) -> None:
    """Revision 2: the certification signature (and its signature timestamp). The validation
    context makes pyHanko check the signer's and the TSA's paths before it signs."""
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD,
        md_algorithm=DIGEST,
        subfilter=fields.SigSeedSubFilter.PADES,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
        validation_context=context,
        signer_key_usage=KEY_USAGE,
        reason="Evidence export from the ClientWindow archive",
    )
    signer = _Signer(meta, signing.signer, timestamper=timestamper)
    signer.sign_pdf(_Writer(source), output=out)


def _seal(out: IO[bytes], signing: Signing, timestamper: HTTPTimeStamper) -> None:
    """Revision 3: the certificates a later reader needs (the signer's chain and the TSA's)
    in the document security store, and a document timestamp over everything before it."""
    out.seek(0)
    writer = _Writer(out)
    (embedded,) = writer.prev.embedded_regular_signatures
    certs = [signing.signer.signing_cert, *signing.signer.cert_registry, *signing.trusted]
    for attribute in embedded.signer_info["unsigned_attrs"]:
        if attribute["type"].native == "signature_time_stamp_token":
            tokens = attribute["values"]
            certs += [c.chosen for t in tokens for c in t["content"]["certificates"]]
    DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=_unique(certs))
    stamper = signers.PdfTimeStamper(timestamper, field_name=ARCHIVE_FIELD)
    stamper.timestamp_pdf(writer, DIGEST, in_place=True)


def _unique(certs: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
    return list({cert.sha256: cert for cert in certs}.values())


# --------------------------------------------------------------------------- checks


@register("exports", deploy=True)
def check_signing(**kwargs: object) -> list[CheckMessage]:
    """exports.W001: transcripts unsigned; exports.E001: signing configured but unusable."""
    try:
        signing = load()
    except SigningError as problem:
        return [Error(f"PDF transcripts cannot be signed: {problem}.", id="exports.E001")]
    if signing is None:
        return [
            Warning(
                "PDF transcripts are produced unsigned: TRANSCRIPT_SIGNING_CERT_FILE and"
                " TRANSCRIPT_SIGNING_KEY_FILE are not set.",
                hint="Set them to the firm's document-signing certificate and key (PEM).",
                id="exports.W001",
            )
        ]
    return []
