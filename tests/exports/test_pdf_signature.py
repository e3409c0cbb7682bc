"""The PAdES signature on PDF transcripts (exports/pdf_sign.py), checked by two independent
verifiers: pyHanko's validator, trusting only our test roots, and poppler's `pdfsig`.

pdfsig runs with `-nocert`: it checks the signature over its byte ranges but not the
certificate, because trusting a test root needs an NSS database and `certutil`
(libnss3-tools), which the machine does not have; pyHanko checks the certificate paths.
The timestamps come from a real OpenSSL TSA on loopback (tests/tsa.py).
"""

import datetime
import io
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pyhanko.keys import load_cert_from_pemder, load_certs_from_pemder
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pypdf import PdfReader

from exports import pdf, pdf_sign
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget
from scripts.local_tsa import LocalTsa
from tests.exports.conftest import Rich

LOCAL_NOTICE = (
    "Signed with a self-signed local test certificate: not evidence of the firm's identity"
)


@pytest.fixture
def local_signer(settings: Any, tmp_path: Path) -> Path:
    """Signing as on a laptop: a self-signed pair created on first use."""
    settings.TRANSCRIPT_SIGNING_CERT_FILE = str(tmp_path / "signing" / "cert.pem")
    settings.TRANSCRIPT_SIGNING_KEY_FILE = str(tmp_path / "signing" / "key.pem")
    settings.TRANSCRIPT_SIGNING_CHAIN_FILE = ""
    settings.TRANSCRIPT_SIGNING_AUTOCREATE = True
    settings.TSA_URLS = []
    return tmp_path / "signing" / "cert.pem"


def render(source: Source, directory: Path) -> bytes:
    directory.mkdir()
    pdf.write(source, DirectoryTarget(directory))
    return (directory / "transcript.pdf").read_bytes()


@pytest.fixture
def transcript(
    rich: Rich, make_source: Callable[..., Source], tmp_path: Path
) -> Callable[[], bytes]:
    counter = iter(range(100))
    scope = Scope.for_conversation(rich.conversation.pk)
    return lambda: render(make_source(scope), tmp_path / f"out-{next(counter)}")


# The signed transcript the read-only checks below look at, rendered once for this module (a
# render costs seconds): its bytes and the local signer's certificate and key that signed it.
_SIGNED: dict[str, bytes] = {}


@pytest.fixture
def signed(local_signer: Path, tsa: LocalTsa, request: pytest.FixtureRequest) -> bytes:
    key = local_signer.with_name("key.pem")
    if not _SIGNED:
        transcript: Callable[[], bytes] = request.getfixturevalue("transcript")
        _SIGNED["pdf"] = transcript()
        _SIGNED["cert"], _SIGNED["key"] = local_signer.read_bytes(), key.read_bytes()
    else:  # the signer it was made with, where this test's settings look for it
        local_signer.parent.mkdir(parents=True, exist_ok=True)
        local_signer.write_bytes(_SIGNED["cert"])
        key.write_bytes(_SIGNED["key"])
    return _SIGNED["pdf"]


def trusting(*pems: Path) -> ValidationContext:
    return ValidationContext(
        trust_roots=[load_cert_from_pemder(str(p)) for p in pems], allow_fetching=False
    )


def pdfsig(data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "checked.pdf"
    path.write_bytes(data)
    done = subprocess.run(
        ["pdfsig", "-nocert", "-no-ocsp", str(path)], capture_output=True, text=True, check=False
    )
    return done.stdout + done.stderr


def signatures(output: str) -> list[str]:
    return output.split("Signature #")[1:]


# --------------------------------------------------------------------------- valid


def test_it_signs_with_a_timestamp_that_pyhanko_validates(
    signed: bytes, local_signer: Path, tsa: LocalTsa
) -> None:
    reader = PdfFileReader(io.BytesIO(signed))
    (signature,) = reader.embedded_regular_signatures
    status = validate_pdf_signature(
        signature, trusting(local_signer), ts_validation_context=trusting(tsa.ca_file)
    )
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION  # the DSS came after
    assert status.modification_level == ModificationLevel.LTA_UPDATES
    assert status.docmdp_ok
    timestamp = status.timestamp_validity
    assert timestamp is not None and (timestamp.intact, timestamp.valid, timestamp.trusted) == (
        True,
        True,
        True,
    )
    assert signature.field_name == pdf_sign.FIELD


def test_it_seals_the_file_with_a_document_timestamp(signed: bytes, tsa: LocalTsa) -> None:
    reader = PdfFileReader(io.BytesIO(signed))
    (archive,) = reader.embedded_timestamp_signatures
    status = validate_pdf_timestamp(archive, validation_context=trusting(tsa.ca_file))
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE


def test_it_embeds_the_certificates_to_validate_later(
    signed: bytes, local_signer: Path, tsa: LocalTsa
) -> None:
    dss = PdfFileReader(io.BytesIO(signed)).root["/DSS"]
    embedded = {asn1_x509.Certificate.load(c.get_object().data).sha256 for c in dss["/Certs"]}
    expected = [local_signer, tsa.ca_file, tsa.chain_file]
    wanted = {c.sha256 for c in load_certs_from_pemder([str(p) for p in expected])}
    assert wanted <= embedded


def test_it_passes_pdfsig(signed: bytes, tmp_path: Path) -> None:
    first, archive = signatures(pdfsig(signed, tmp_path))
    assert "Signature Field Name: Transcript" in first
    assert "ClientWindow local test signer" in first
    assert "Signature Type: ETSI.CAdES.detached" in first
    assert "Signature Validation: Signature is Valid." in first
    # poppler 22.12 lists the document timestamp and its coverage but cannot check RFC 3161
    # timestamps ("Unimplemented Feature"): pyHanko checks it above.
    assert "Signature Field Name: TranscriptArchiveTimestamp" in archive
    assert "Total document signed" in archive


def test_it_stays_pdf_a_3b(signed: bytes) -> None:
    reader = PdfReader(io.BytesIO(signed))
    assert signed.startswith(b"%PDF-1.7\n")
    xmp = reader.xmp_metadata
    assert xmp is not None
    description = xmp.rdf_root.getElementsByTagName("rdf:Description")[0]
    assert description.getAttribute("pdfaid:part") == "3"
    assert description.getAttribute("pdfaid:conformance") == "B"
    assert reader.metadata is not None and reader.metadata.producer == "WeasyPrint 70.0"
    root: Any = reader.root_object
    assert "/Version" not in root  # still PDF 1.7
    assert root["/OutputIntents"][0]["/S"] == "/GTS_PDFA1"
    assert list(reader.attachments) == ["manifest.json"]
    widget = reader.pages[0]["/Annots"][0].get_object()
    assert widget["/Rect"] == [0, 0, 0, 0] and widget["/F"] & 4  # invisible, printable flag


def test_it_says_on_the_cover_who_signs(
    signed: bytes, local_signer: Path, transcript: Callable[[], bytes], settings: Any
) -> None:
    cover = PdfReader(io.BytesIO(signed)).pages[0].extract_text().replace("\n", " ")
    assert LOCAL_NOTICE in cover
    assert "PAdES B-LTA" in cover
    settings.TSA_URLS = []
    cover = PdfReader(io.BytesIO(transcript())).pages[0].extract_text().replace("\n", " ")
    assert "without a trusted timestamp" in cover


def test_it_signs_once_the_renderers_have_ended(
    local_signer: Path, real_renderers: None, transcript: Callable[[], bytes], monkeypatch: Any
) -> None:
    """Signing holds the file's cross-reference table (~0.25 KB an object): not beside the
    renderers' memory."""
    started: list[Any] = []
    start, sign = pdf.Renderers._start, pdf_sign.sign

    def starting() -> Any:
        started.append(start())
        return started[-1]

    monkeypatch.setattr(pdf.Renderers, "_start", staticmethod(starting))
    alive_at_signing: list[list[int | None]] = []

    def signing(*args: Any) -> None:
        alive_at_signing.append([proc.poll() for proc in started])
        sign(*args)

    monkeypatch.setattr(pdf_sign, "sign", signing)
    assert PdfReader(io.BytesIO(transcript())).trailer
    (codes,) = alive_at_signing
    assert started and codes == [0] * len(started)  # every renderer exited, and cleanly


def test_it_creates_the_local_key_private(
    local_signer: Path, transcript: Callable[[], bytes]
) -> None:
    assert PdfReader(io.BytesIO(transcript())).trailer  # signing created the pair on first use
    key = local_signer.with_name("key.pem")
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    certificate = x509.load_pem_x509_certificate(local_signer.read_bytes())
    assert "NOT A FIRM'S CERTIFICATE" in certificate.subject.rfc4514_string()


def test_it_signs_without_a_timestamp_when_no_tsa_is_configured(
    local_signer: Path, transcript: Callable[[], bytes], tmp_path: Path
) -> None:
    data = transcript()
    (signature,) = PdfFileReader(io.BytesIO(data)).embedded_regular_signatures
    status = validate_pdf_signature(signature, trusting(local_signer))
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.timestamp_validity is None
    (only,) = signatures(pdfsig(data, tmp_path))
    assert "Signature is Valid." in only and "Total document signed" in only


# --------------------------------------------------------------------------- a firm's chain


def _issue(
    subject: str, key: Any, issuer: tuple[x509.Name, Any] | None, ca: bool
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    usage = dict.fromkeys(
        ("key_encipherment", "data_encipherment", "key_agreement", "encipher_only",
         "decipher_only"), False)  # fmt: skip
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=not ca,
                key_cert_sign=ca,
                crl_sign=ca,
                **usage,
            ),
            critical=True,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture
def firm_signer(settings: Any, tmp_path: Path) -> Path:
    """A firm's certificate (ECDSA P-256, password-protected key) from a private CA; returns
    the CA's root."""
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = _issue("Example Trust Services Root", root_key, None, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue("Example Wealth LLP document signing", key, (root.subject, root_key), ca=False)
    (tmp_path / "firm").mkdir()
    (tmp_path / "firm" / "cert.pem").write_bytes(_pem(leaf))
    (tmp_path / "firm" / "chain.pem").write_bytes(_pem(root))
    (tmp_path / "firm" / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"hunter2"),
        )
    )
    settings.TRANSCRIPT_SIGNING_CERT_FILE = str(tmp_path / "firm" / "cert.pem")
    settings.TRANSCRIPT_SIGNING_KEY_FILE = str(tmp_path / "firm" / "key.pem")
    settings.TRANSCRIPT_SIGNING_CHAIN_FILE = str(tmp_path / "firm" / "chain.pem")
    settings.TRANSCRIPT_SIGNING_KEY_PASSWORD = "hunter2"
    settings.TRANSCRIPT_SIGNING_AUTOCREATE = False
    return tmp_path / "firm" / "chain.pem"


def test_it_signs_with_the_firms_certificate_and_names_it(
    firm_signer: Path, tsa: LocalTsa, transcript: Callable[[], bytes], tmp_path: Path
) -> None:
    data = transcript()
    reader = PdfFileReader(io.BytesIO(data))
    (signature,) = reader.embedded_regular_signatures
    status = validate_pdf_signature(
        signature, trusting(firm_signer), ts_validation_context=trusting(tsa.ca_file)
    )
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert "/Version" not in PdfReader(io.BytesIO(data)).root_object  # ECDSA, still PDF 1.7
    cover = PdfReader(io.BytesIO(data)).pages[0].extract_text().replace("\n", " ")
    assert "Signed by CN=Example Wealth LLP document signing" in cover
    assert "issued by CN=Example Trust Services Root" in cover
    assert "self-signed" not in cover
    first, _ = signatures(pdfsig(data, tmp_path))
    assert "Signature is Valid." in first


# --------------------------------------------------------------------------- tampering


def _tamper(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


def _first_range(data: bytes) -> tuple[int, int, int, int]:
    (signature,) = PdfFileReader(io.BytesIO(data)).embedded_regular_signatures
    start, length, second, second_length = signature.byte_range
    return start, length, second, second_length


def test_it_reports_a_changed_byte_to_both_verifiers(
    signed: bytes, local_signer: Path, tsa: LocalTsa, tmp_path: Path
) -> None:
    text = signed.index(b"/Producer")  # in the rendered file's /Info: read, not structure
    tampered = _tamper(signed, text + 2)
    (signature,) = PdfFileReader(io.BytesIO(tampered)).embedded_regular_signatures
    status = validate_pdf_signature(
        signature, trusting(local_signer), ts_validation_context=trusting(tsa.ca_file)
    )
    assert not status.intact and not status.bottom_line
    first, _ = signatures(pdfsig(tampered, tmp_path))
    assert "Signature Validation: Digest Mismatch." in first


@hypothesis_settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(where=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_it_never_validates_a_transcript_changed_anywhere_it_signed(
    signed: bytes, local_signer: Path, where: float
) -> None:
    start, length, second, second_length = _first_range(signed)
    covered = length + second_length
    position = int(where * covered)
    offset = start + position if position < length else second + position - length
    try:
        reader = PdfFileReader(io.BytesIO(_tamper(signed, offset)))
        (signature,) = reader.embedded_regular_signatures
        status = validate_pdf_signature(signature, trusting(local_signer))
    # pyHanko's validation errors are ValueErrors; a number whose "." became "/" fails in
    # Decimal (decimal.InvalidOperation, an ArithmeticError: found at two offsets of 166,335
    # by scanning every 55th byte)
    except (PdfError, ValueError, KeyError, ArithmeticError):
        return  # a file that no longer reads as signed is not a valid one either
    assert not status.intact


# --------------------------------------------------------------------------- failing


def test_it_fails_the_export_when_the_tsa_is_down(
    local_signer: Path, tsa: LocalTsa, transcript: Callable[[], bytes], tmp_path: Path
) -> None:
    tsa.mode = "down"
    with pytest.raises(pdf_sign.SigningError, match="no timestamp authority answered"):
        transcript()
    assert not (tmp_path / "out-0" / "transcript.pdf").exists()


def test_it_uses_the_next_tsa_when_one_is_unreachable(
    local_signer: Path, tsa: LocalTsa, transcript: Callable[[], bytes], settings: Any
) -> None:
    settings.TSA_URLS = ["http://127.0.0.1:9/", tsa.url]  # nothing listens on the discard port
    reader = PdfFileReader(io.BytesIO(transcript()))
    assert len(reader.embedded_regular_signatures) == 1
    assert len(reader.embedded_timestamp_signatures) == 1


def test_it_refuses_a_tsa_it_does_not_trust(
    local_signer: Path, tsa: LocalTsa, transcript: Callable[[], bytes]
) -> None:
    tsa.mode = "untrusted"
    with pytest.raises(pdf_sign.SigningError, match="could not be signed"):
        transcript()


def test_it_refuses_a_key_of_another_certificate(
    firm_signer: Path, transcript: Callable[[], bytes], settings: Any, tmp_path: Path
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "other.pem").write_bytes(pem)
    settings.TRANSCRIPT_SIGNING_KEY_FILE = str(tmp_path / "other.pem")
    settings.TRANSCRIPT_SIGNING_KEY_PASSWORD = ""
    with pytest.raises(pdf_sign.SigningError, match="does not belong to its certificate"):
        transcript()


def test_it_names_a_wrong_key_password(firm_signer: Path, settings: Any) -> None:
    settings.TRANSCRIPT_SIGNING_KEY_PASSWORD = "wrong"
    with pytest.raises(pdf_sign.SigningError, match="cannot be read"):
        pdf_sign.load()


def test_it_writes_an_unsigned_transcript_that_says_so_when_unconfigured(
    transcript: Callable[[], bytes], settings: Any
) -> None:
    settings.TRANSCRIPT_SIGNING_CERT_FILE = ""
    reader = PdfReader(io.BytesIO(transcript()))
    assert "/AcroForm" not in reader.root_object
    assert "Not signed: no signing certificate is configured" in reader.pages[0].extract_text()


# --------------------------------------------------------------------------- checks


def test_it_warns_at_deploy_when_transcripts_are_unsigned(settings: Any) -> None:
    settings.TRANSCRIPT_SIGNING_CERT_FILE = ""
    assert [m.id for m in pdf_sign.check_signing()] == ["exports.W001"]


def test_it_errs_at_deploy_when_the_signing_files_are_unusable(settings: Any) -> None:
    settings.TRANSCRIPT_SIGNING_CERT_FILE = "/nonexistent/cert.pem"
    settings.TRANSCRIPT_SIGNING_KEY_FILE = "/nonexistent/key.pem"
    settings.TRANSCRIPT_SIGNING_AUTOCREATE = False
    (message,) = pdf_sign.check_signing()
    assert message.id == "exports.E001" and "cannot be read" in message.msg


def test_it_is_quiet_at_deploy_when_signing_works(firm_signer: Path) -> None:
    assert pdf_sign.check_signing() == []
