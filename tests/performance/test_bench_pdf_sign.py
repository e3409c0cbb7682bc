"""PDF signing benchmark: what the PAdES signature adds to a 1,000-message transcript.

The conversation is built as in test_bench_pdf.py (webhook deliveries through the sequencer,
an image every 50 messages). The signer is a self-signed local certificate; the timestamps
come from the loopback OpenSSL TSA (tests/tsa.py), so the figures include three TSA round
trips (pyHanko's pre-signing check of the TSA, the signature timestamp, the document
timestamp) but no network.

- unsigned / signed: exports.pdf.write in a forked daemonic process (as django-q2 runs it),
  signing off and on, alternately, RUNS times each; the medians and their difference.
- ours alone: exports.pdf_sign.sign on the unsigned file, in this process.
- pyHanko alone (the ceiling): one PdfSigner.sign_pdf call making the same B-LTA signature
  (embed_validation_info, use_pades_lta) with pyHanko's own writers, on the same file.

The issue allows signing to add at most 1 s: the summary's figure is `sign()` on its own,
since the difference of two ~20 s renders is mostly the shared machine's noise. Nothing
asserts on speed; the signed file is checked to validate.
"""

import io
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.timestamps import HTTPTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from archive.checkpoints import create_checkpoint
from exports import pdf_sign
from messaging import simulator
from messaging.models import Channel, Conversation
from scripts.local_tsa import LocalTsa
from tests.performance.conftest import Figure, record, say, seconds, table
from tests.performance.test_bench_pdf import build, ours

COUNT = 1000
RUNS = int(os.environ.get("BENCH_PDF_SIGN_RUNS", "2"))


@pytest.fixture
def conversation(empty_ledger: None, settings: Any, tmp_path: Path) -> Iterator[Conversation]:
    settings.MEDIA_ROOT = tmp_path / "media"
    demo = simulator.DEMO_CHANNEL
    channel = Channel.objects.create(
        name=demo["name"],
        phone_number_id=demo["phone_number_id"],
        display_number=demo["display_number"],
    )
    built = build(channel, "447700955555", COUNT)
    create_checkpoint()
    yield built


def export(conversation: Conversation, directory: Path) -> float:
    directory.mkdir()
    return float(ours(conversation, directory)["seconds"])


def bare_pyhanko(unsigned: Path, signed: Path, signing: pdf_sign.Signing, url: str) -> None:
    """pyHanko's own B-LTA in one call: what signing costs without our steps around it."""
    context = ValidationContext(trust_roots=signing.trusted, allow_fetching=False)
    meta = signers.PdfSignatureMetadata(
        field_name="Signature",
        subfilter=fields.SigSeedSubFilter.PADES,
        embed_validation_info=True,
        use_pades_lta=True,
        validation_context=context,
        signer_key_usage=pdf_sign.KEY_USAGE,
    )
    timestamper = HTTPTimeStamper(url)
    with unsigned.open("rb") as source, signed.open("w+b") as out:
        signers.PdfSigner(meta, signing.signer, timestamper=timestamper).sign_pdf(
            IncrementalPdfFileWriter(source), output=out
        )


def timed(work: Any) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def test_bench_pdf_sign(
    conversation: Conversation, tsa: LocalTsa, settings: Any, tmp_path: Path
) -> None:
    cert = tmp_path / "signing" / "cert.pem"
    settings.TRANSCRIPT_SIGNING_AUTOCREATE = True
    settings.TRANSCRIPT_SIGNING_CHAIN_FILE = ""
    settings.TRANSCRIPT_SIGNING_KEY_PASSWORD = ""
    settings.TRANSCRIPT_SIGNING_KEY_FILE = str(tmp_path / "signing" / "key.pem")
    unsigned_runs, signed_runs = [], []
    with tempfile.TemporaryDirectory(prefix="bench-pdf-sign-") as tmp:
        work = Path(tmp)
        for n in range(RUNS):
            settings.TRANSCRIPT_SIGNING_CERT_FILE = ""
            unsigned_runs.append(export(conversation, work / f"unsigned-{n}"))
            settings.TRANSCRIPT_SIGNING_CERT_FILE = str(cert)
            signed_runs.append(export(conversation, work / f"signed-{n}"))
        unsigned = work / "unsigned-0" / "transcript.pdf"
        signed = (work / "signed-0" / "transcript.pdf").read_bytes()
        (signature,) = PdfFileReader(io.BytesIO(signed)).embedded_regular_signatures
        trust = ValidationContext(trust_roots=[load_cert_from_pemder(str(cert))])
        stamps = ValidationContext(trust_roots=[load_cert_from_pemder(str(tsa.ca_file))])
        assert validate_pdf_signature(signature, trust, ts_validation_context=stamps).bottom_line
        signing = pdf_sign.load()
        assert signing is not None
        alone = timed(lambda: pdf_sign.sign(unsigned, work / "ours.pdf", signing))
        ceiling = timed(lambda: bare_pyhanko(unsigned, work / "bare.pdf", signing, tsa.url))
        size = unsigned.stat().st_size
    plain, with_signature = statistics.median(unsigned_runs), statistics.median(signed_runs)
    added = with_signature - plain
    # The signing step timed on its own: the end-to-end difference carries the noise of two
    # 20-second renders on a shared machine.
    record(
        Figure(
            f"PDF signature of {COUNT:,} messages (sign step)",
            alone,
            "s",
            ceiling=ceiling,
            ceiling_label="pyHanko B-LTA alone",
            target=1.0,
        )
    )
    rows = [
        [
            f"{COUNT:,}",
            f"{size / 2**20:.1f} MB",
            seconds(plain),
            seconds(with_signature),
            seconds(added),
            f"{with_signature / plain:.3f}",
            seconds(alone),
            seconds(ceiling),
        ]
    ]
    headers = ["messages", "file", "unsigned", "signed", "added", "ratio", "sign()", "pyHanko"]
    title = (
        f"== PDF signature (PAdES B-LTA, loopback TSA): medians of {RUNS} runs each;"
        f" ratio = signed / unsigned; load average {os.getloadavg()[0]:.1f}"
    )
    say(table(headers, rows, title=title))
    pairs = zip(unsigned_runs, signed_runs, strict=True)
    each = ", ".join(f"{seconds(a)} / {seconds(b)}" for a, b in pairs)
    say(f"runs, unsigned / signed: {each}")
