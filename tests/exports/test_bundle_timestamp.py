"""The evidence bundle carries its checkpoint's RFC 3161 token: an export job asks the TSA (the
real `openssl ts -reply` of tests/tsa.py) right after signing its checkpoint; OpenSSL verifies
the bundled token with the very command VERIFY.md prints; verify.py checks the imprint and
genTime offline, fails on a token for another note or a changed file, and notes a bundle made
while the TSA was down; its DER reader never fails with anything but its own Failure."""

import contextlib
import hashlib
import io
import json
import re
import subprocess
import time
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asn1crypto import tsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import anchoring
from archive.envelope import rfc3339
from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp
from exports import bundle, jobs
from exports.models import Export
from exports.scope import Scope
from scripts.local_tsa import LocalTsa
from tests.exports.conftest import Rich
from tests.exports.test_bundle import fake_write, make_bundle, system_verify, unpack
from tests.exports.test_verify_py import load_verifier

verifier = load_verifier()
VERIFY_MD = Path(bundle.__file__).parent / "verifier" / "VERIFY.md"


@pytest.fixture(autouse=True)
def stand_in_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundle around tiny stand-ins for the PDF, CSV, EML and RSMF (tested elsewhere)."""
    real_writer = bundle.formats.writer
    monkeypatch.setattr(
        bundle.formats, "writer", lambda f: real_writer(f) if f == "bundle" else fake_write(f)
    )


def export_bundle(user: Any, rich: Rich, into: Path) -> Path:
    """A bundle made the way the portal makes one: requested, then run by the job."""
    scope = Scope.for_conversation(rich.conversation.pk)
    export = jobs.request_export(user, scope, "bundle", queue=False)
    state = jobs.run_export(str(export.pk), output=into / "bundle.zip")
    assert state == Export.State.DONE, Export.objects.get(pk=export.pk).error
    return unpack(into / "bundle.zip", into / "unpacked")


def timestamp_recipe() -> str:
    """The commands of VERIFY.md's timestamp section, as an auditor copies them."""
    section = VERIFY_MD.read_text().split("## 4. The timestamp", 1)[1]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found is not None
    return found.group(1)


def shell(script: str, where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script], cwd=where, capture_output=True, text=True, timeout=60
    )


def run(target: Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = verifier.main([str(target)])
    return code, out.getvalue()


def token_for(tsa: LocalTsa, data: bytes) -> bytes:
    """A token straight from the TSA, over any bytes (no archive code involved)."""
    query = subprocess.run(
        ["openssl", "ts", "-query", "-sha256", "-cert"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout
    reply = httpx.post(
        tsa.url, content=query, headers={"Content-Type": "application/timestamp-query"}
    )
    reply.raise_for_status()
    token: bytes = tsp.TimeStampResp.load(reply.content)["time_stamp_token"].dump()
    return token


def gen_time_of(token: bytes) -> datetime:
    info = tsp.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    moment: datetime = info["gen_time"].native
    return moment


def test_it_bundles_a_token_that_the_verify_md_command_verifies(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    unpacked = export_bundle(auditor, rich, tmp_path)
    kept = CheckpointTimestamp.objects.get()
    assert (unpacked / "checkpoint.tst").read_bytes() == bytes(kept.token)
    assert (unpacked / "tsa-ca.pem").read_bytes() == tsa.ca_file.read_bytes()
    done = shell(timestamp_recipe(), unpacked)
    assert done.returncode == 0, done.stderr
    assert "Verification: OK" in done.stdout
    assert f"Time stamp: {kept.gen_time:%b %e %H:%M:%S %Y} GMT" in done.stdout


def test_verify_py_reports_the_imprint_and_the_gentime(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    unpacked = export_bundle(auditor, rich, tmp_path)
    kept = CheckpointTimestamp.objects.get()
    imprint = hashlib.sha256((unpacked / "checkpoint.note").read_bytes()).hexdigest()
    stated = json.loads((unpacked / "manifest.json").read_text())["checkpoint"]["timestamp"]
    assert stated == {
        "file": "checkpoint.tst",
        "ca_file": "tsa-ca.pem",
        "gen_time": rfc3339(kept.gen_time),
        "tsa_url": tsa.url,
        "imprint": imprint,
    }
    code, out = system_verify(unpacked)
    assert code == 0, out
    assert f"its imprint is the SHA-256 of checkpoint.note ({imprint})" in out
    assert f"genTime {rfc3339(kept.gen_time)}" in out and "VERIFIED" in out
    assert "not by verify.py: run `openssl ts -verify`" in out


def test_a_changed_note_fails_both_checks(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    unpacked = export_bundle(auditor, rich, tmp_path)
    note = unpacked / "checkpoint.note"
    note.write_bytes(note.read_bytes().replace(b"\n", b"\n1", 1))  # another tree size
    done = shell(timestamp_recipe(), unpacked)
    assert "Verification: FAILED" in done.stdout + done.stderr
    code, out = run(unpacked)
    assert code == 1 and "checkpoint.note: its size or SHA-256 differs" in out


def test_a_flipped_token_byte_fails_both_checks(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    unpacked = export_bundle(auditor, rich, tmp_path)
    token = unpacked / "checkpoint.tst"
    original = token.read_bytes()
    imprint = original.index(hashlib.sha256((unpacked / "checkpoint.note").read_bytes()).digest())
    for offset in (imprint, len(original) - 1):  # the imprint; the signature's last byte
        changed = bytearray(original)
        changed[offset] ^= 0x01
        token.write_bytes(bytes(changed))
        done = shell(timestamp_recipe(), unpacked)
        assert "Verification: FAILED" in done.stdout + done.stderr, offset
        code, out = run(unpacked)
        assert code == 1 and "checkpoint.tst: its size or SHA-256 differs" in out


def test_a_token_the_manifest_names_must_be_there(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    unpacked = export_bundle(auditor, rich, tmp_path)
    (unpacked / "checkpoint.tst").unlink()
    code, out = run(unpacked)
    assert code == 1 and "checkpoint.tst is listed in the manifest, but missing" in out


def test_verify_py_refuses_a_token_for_another_note(
    tsa: LocalTsa, rich: Rich, make_source: Any, tmp_path: Path
) -> None:
    """A bundle made and signed in good order, but around a token over some other bytes: only
    the imprint check can tell."""
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    other = token_for(tsa, b"another checkpoint\n")
    CheckpointTimestamp.objects.create(
        checkpoint=source.checkpoint,
        token=other,
        tsa_url=tsa.url,
        gen_time=gen_time_of(other),
        received_at=source.checkpoint.created_at,
    )
    unpacked = unpack(make_bundle(source, tmp_path / "bundle.zip"), tmp_path / "unpacked")
    code, out = run(unpacked)
    assert code == 1
    assert "FAIL: checkpoint.tst is not a token for checkpoint.note: its imprint differs" in out
    done = shell(timestamp_recipe(), unpacked)
    assert "Verification: FAILED" in done.stdout + done.stderr


def test_it_states_the_tsa_without_credentials_and_notes_a_missing_ca_file(
    tsa: LocalTsa, rich: Rich, make_source: Any, settings: Any, tmp_path: Path
) -> None:
    settings.TSA_CA_FILE = ""
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    token = token_for(tsa, source.checkpoint.note.encode())
    CheckpointTimestamp.objects.create(
        checkpoint=source.checkpoint,
        token=token,
        tsa_url="https://user:secret@tsa.example:8443/ts?apikey=secret",
        gen_time=gen_time_of(token),
        received_at=source.checkpoint.created_at,
    )
    path = make_bundle(source, tmp_path / "bundle.zip")
    manifest = json.loads(zipfile.ZipFile(path).read("manifest.json"))
    assert manifest["checkpoint"]["timestamp"]["tsa_url"] == "https://tsa.example:8443/ts"
    assert manifest["checkpoint"]["timestamp"]["ca_file"] is None
    code, out = run(path)
    assert code == 0, out
    assert "note no tsa-ca.pem: check checkpoint.tst against the certificate" in out
    assert b"secret" not in path.read_bytes()


def test_a_bundle_made_while_the_tsa_is_down_has_no_token_and_says_so(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    tsa.mode = "down"
    unpacked = export_bundle(auditor, rich, tmp_path)
    assert not (unpacked / "checkpoint.tst").exists()
    assert not (unpacked / "tsa-ca.pem").exists()
    manifest = json.loads((unpacked / "manifest.json").read_text())
    assert manifest["checkpoint"]["timestamp"] is None
    code, out = system_verify(unpacked)
    assert code == 0, out
    assert "note no RFC 3161 timestamp token" in out and "VERIFIED" in out
    waiting = AnchorTask.objects.get(duty=AnchorTask.Duty.TIMESTAMP)  # the worker tries again
    assert waiting.checkpoint_id == manifest["checkpoint"]["tree_size"] and waiting.last_error


def test_a_tsa_that_does_not_answer_holds_the_export_up_for_tsa_timeout_only(
    tsa: LocalTsa, rich: Rich, auditor: Any, settings: Any, tmp_path: Path
) -> None:
    tsa.mode, settings.TSA_TIMEOUT = "slow", 1  # it answers after 5 s
    started = time.monotonic()
    unpacked = export_bundle(auditor, rich, tmp_path)
    assert time.monotonic() - started < 4.5
    assert not (unpacked / "checkpoint.tst").exists()
    assert "timeout" in AnchorTask.objects.get(duty=AnchorTask.Duty.TIMESTAMP).last_error


def test_only_a_bundle_export_waits_for_the_tsa(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "csv")
    assert jobs.run_export(str(export.pk), output=tmp_path / "x.csv") == Export.State.DONE
    assert not CheckpointTimestamp.objects.exists()
    assert AnchorTask.objects.filter(duty=AnchorTask.Duty.TIMESTAMP).exists()


def test_the_worker_timestamps_it_later_and_the_next_bundle_has_its_own(
    tsa: LocalTsa, rich: Rich, auditor: Any, tmp_path: Path
) -> None:
    tsa.mode = "down"
    export_bundle(auditor, rich, tmp_path / "first")
    first = Checkpoint.objects.order_by("-tree_size").first()
    tsa.mode = "ok"
    assert anchoring.run_due(everything=True).done >= 1  # what the worker does every minute
    assert first is not None and first.timestamps.exists()
    later = export_bundle(auditor, rich, tmp_path / "second")  # its request is a new entry
    assert (later / "checkpoint.tst").exists()
    assert CheckpointTimestamp.objects.filter(checkpoint__gt=first).exists()


# --------------------------------------------------------------------------- the DER reader

ANY_BYTES = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def real_token(tsa_server: LocalTsa) -> bytes:
    return token_for(tsa_server, b"a checkpoint note\n")


def test_it_reads_a_real_token(real_token: bytes) -> None:
    hashed, gen_time = verifier.read_token(real_token)
    assert hashed == hashlib.sha256(b"a checkpoint note\n").digest()
    assert gen_time == rfc3339(gen_time_of(real_token))


def test_it_refuses_bytes_after_the_token(real_token: bytes) -> None:
    with pytest.raises(verifier.Failure, match="bytes after the end"):
        verifier.read_token(real_token + b"\x00")


@ANY_BYTES
@given(data=st.binary(max_size=600))
def test_it_never_raises_anything_but_failure_on_any_bytes(data: bytes) -> None:
    with contextlib.suppress(verifier.Failure):
        verifier.read_token(data)


@ANY_BYTES
@given(at=st.floats(0, 1, exclude_max=True), value=st.integers(0, 255), cut=st.booleans())
def test_it_never_raises_anything_but_failure_on_a_damaged_token(
    real_token: bytes, at: float, value: int, cut: bool
) -> None:
    offset = int(at * len(real_token))
    damaged = real_token[:offset] if cut else bytearray(real_token)
    if not cut:
        damaged[offset] = value
    try:
        hashed, _ = verifier.read_token(bytes(damaged))
    except verifier.Failure:
        return
    assert len(hashed) == 32  # a change the reader skips over (a certificate, the signature)


@pytest.mark.parametrize(
    "raw",
    [b"20261203134445Z", b"20261203134445.5Z", b"20261203134445.123456789Z"],
)
def test_it_reads_a_gentime(raw: bytes) -> None:
    assert verifier.generalized_time(raw).startswith("2026-12-03T13:44:45.")


@pytest.mark.parametrize(
    "raw",
    [
        b"20261203134445",
        b"20261203134445.50Z",
        b"20261203134445.Z",
        b"20261303134445Z",
        b"2026+203134445Z",
    ],
)
def test_it_refuses_a_gentime_that_is_not_der(raw: bytes) -> None:
    with pytest.raises(verifier.Failure, match="genTime"):
        verifier.generalized_time(raw)
