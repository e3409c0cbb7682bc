"""The evidence bundle: what it holds, that verify.py (run by the system python3, as an auditor
would) accepts it zipped and unpacked, that it is deterministic, and that names stay inside.

Most tests compose tiny stand-in writers (`fake_writers`) so that they test the bundle alone;
those marked `real` compose the writers of exports/formats.py as the job does."""

import base64
import importlib.util
import io
import json
import subprocess
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.files.storage import default_storage

from archive import checkpoints, proofs, signing
from archive.models import Checkpoint, LedgerEntry
from exports import bundle, evidence, formats
from exports.scope import Scope
from exports.source import Source
from exports.target import Target, checked_name, zip_target
from messaging.models import MediaFile
from tests.exports.conftest import PNG, SAMPLES, Rich

VERIFY = Path(bundle.__file__).parent / "verifier" / "verify.py"
MISSING = [m for m, _, _ in formats.FORMATS.values() if importlib.util.find_spec(m) is None]
real = pytest.mark.skipif(bool(MISSING), reason=f"writers not landed yet: {', '.join(MISSING)}")


def fake_write(fmt: str) -> formats.Writer:
    """A stand-in writer: one file (pdf, csv) or one per message (eml, rsmf), as the real ones."""

    def write(source: Source, target: Target, prefix: str = "") -> None:
        single = formats.single_file(fmt)
        rows = [row for part in source.parts() for row in part.rows()]
        if single:
            with target.open(prefix + single) as out:
                out.write("\n".join(row.current_text for row in rows).encode())
            return
        for row in rows:
            with target.open(f"{prefix}{fmt}/{row.message.entry_id}.txt") as out:
                out.write(row.message.text.encode())

    return write


@pytest.fixture
def fake_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    real_writer = formats.writer
    monkeypatch.setattr(
        formats, "writer", lambda fmt: real_writer(fmt) if fmt == "bundle" else fake_write(fmt)
    )


@pytest.fixture
def rich_source(rich: Rich, make_source: Callable[..., Source]) -> Source:
    return make_source(Scope.for_conversation(rich.conversation.pk))


def make_bundle(source: Source, path: Path) -> Path:
    """The bundle as the export job writes it (exports/jobs.py: bundle.zip_stream)."""
    with bundle.zip_stream(path) as target:
        bundle.write(source, target)
    return path


def nested_names(path: Path, name: str) -> list[str]:
    """The members of a nested archive of the bundle (eml.zip, rsmf.zip)."""
    with zipfile.ZipFile(path) as outer, zipfile.ZipFile(io.BytesIO(outer.read(name))) as inner:
        assert inner.testzip() is None
        return inner.namelist()


def unpack(path: Path, into: Path) -> Path:
    with zipfile.ZipFile(path) as archive:
        archive.extractall(into)
    return into


def system_verify(target: Path, *args: str, script: Path = VERIFY) -> tuple[int, str]:
    """verify.py as an auditor runs it: the system python3, nothing of ours importable."""
    done = subprocess.run(
        ["/usr/bin/python3", "-I", str(script), str(target), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    return done.returncode, done.stdout + done.stderr


def differing(first: Path, second: Path) -> list[str]:
    """The members whose bytes differ between two bundles (a determinism failure, named)."""
    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as other:
        names = sorted(set(one.namelist()) | set(other.namelist()))
        return [
            n
            for n in names
            if n not in other.namelist() or n not in one.namelist() or one.read(n) != other.read(n)
        ]


def manifest_of(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        loaded: dict[str, Any] = json.loads(archive.read("manifest.json"))
    return loaded


@pytest.mark.usefixtures("fake_writers")
def test_it_verifies_zipped_and_unpacked_with_the_system_python(
    rich_source: Source, tmp_path: Path
) -> None:
    path = make_bundle(rich_source, tmp_path / "bundle.zip")
    key = checkpoints.verifier_key_text()
    code, out = system_verify(path, "--key", key)
    assert code == 0, out
    assert "VERIFIED" in out and "WARNING" not in out
    unpacked = unpack(path, tmp_path / "unpacked")
    code, out = system_verify(unpacked, "--key", key, script=unpacked / "verify.py")
    assert code == 0, out
    assert "this verify.py is the copy the manifest lists" in out


@pytest.mark.usefixtures("fake_writers")
def test_it_verifies_a_scope_without_media(
    make_source: Callable[..., Source], tmp_path: Path
) -> None:
    path = make_bundle(make_source(), tmp_path / "bundle.zip")  # the demo client's conversation
    manifest = manifest_of(path)
    assert manifest["attachments"] == [] and manifest["export"]["counts"]["attachments"] == 0
    code, out = system_verify(path)
    assert code == 0, out


@pytest.mark.usefixtures("fake_writers")
def test_it_holds_every_format_the_media_and_the_evidence(
    rich_source: Source, tmp_path: Path
) -> None:
    path = make_bundle(rich_source, tmp_path / "bundle.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert {"pdf/transcript.pdf", "csv/messages.csv", "checkpoint.note", "verify.py"} <= set(names)
    assert {"eml.zip", "rsmf.zip"} <= set(names)  # one member each, however many messages
    assert not any(n.startswith(("eml/", "rsmf/")) for n in names)
    seqs = [row.message.entry_id for part in rich_source.parts() for row in part.rows()]
    assert nested_names(path, "eml.zip") == [f"eml/{seq}.txt" for seq in seqs]
    assert names[-2:] == ["manifest.json", "manifest.sig"]
    png = [n for n in names if n.startswith("attachments/") and n.endswith(".png")]
    assert png == [f"attachments/{MediaFile.objects.get(size=len(PNG)).sha256}.png"]
    manifest = manifest_of(path)
    assert [f["name"] for f in manifest["files"]] == names[:-2]
    assert manifest["export"]["counts"] == {
        "messages": len(SAMPLES) + 6,
        "attachments": 2,
        "files": len(names) - 2,
    }
    roles = {e["role"] for e in manifest["entries"]}
    assert roles == set(evidence.ROLES)


@pytest.mark.usefixtures("fake_writers")
def test_it_discloses_the_sealed_text_of_each_message(rich_source: Source, tmp_path: Path) -> None:
    manifest = manifest_of(make_bundle(rich_source, tmp_path / "bundle.zip"))
    texts = {
        base64.b64decode(e["contents"]["text"]["content"]).decode()
        for e in manifest["entries"]
        if e["role"] == "message"
    }
    assert set(SAMPLES.values()) <= texts


@pytest.mark.usefixtures("fake_writers")
def test_its_proofs_are_those_of_the_archive(rich_source: Source, tmp_path: Path) -> None:
    manifest = manifest_of(make_bundle(rich_source, tmp_path / "bundle.zip"))
    for entry in manifest["entries"]:
        expected = proofs.entry_inclusion_proof(entry["seq"], rich_source.tree_size)
        assert entry["proof"] == [node.hex() for node in expected]


@pytest.mark.usefixtures("fake_writers")
def test_it_is_byte_identical_for_the_same_source(rich_source: Source, tmp_path: Path) -> None:
    first = make_bundle(rich_source, tmp_path / "first.zip").read_bytes()
    assert make_bundle(rich_source, tmp_path / "second.zip").read_bytes() == first


@pytest.mark.usefixtures("fake_writers")
def test_it_refuses_a_checkpoint_the_current_key_did_not_sign(
    rich_source: Source, tmp_path: Path
) -> None:
    other = Ed25519PrivateKey.generate()
    note = signing.sign_note(
        rich_source.checkpoint.note.split("\n\n")[0] + "\n", "x.example/ledger", other
    )
    rich_source.checkpoint = Checkpoint(
        tree_size=rich_source.tree_size, root=rich_source.checkpoint.root, note=note
    )
    with pytest.raises(bundle.BundleError, match="does not verify with the current ledger key"):
        make_bundle(rich_source, tmp_path / "bundle.zip")


@pytest.mark.usefixtures("fake_writers")
def test_it_refuses_media_whose_bytes_changed(rich_source: Source, tmp_path: Path) -> None:
    stored = MediaFile.objects.get(size=len(PNG))
    with default_storage.open(stored.storage_name, "wb") as handle:
        handle.write(PNG[:-1] + b"\x00")
    with pytest.raises(bundle.BundleError, match="no longer matches its sealed hash"):
        make_bundle(rich_source, tmp_path / "bundle.zip")


def test_its_proof_source_stays_within_its_caches(
    rich_source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(evidence, "BLOCKS_HELD", 1)
    size = rich_source.tree_size
    source = evidence.ProofSource(size, bytes(rich_source.checkpoint.root))
    for seq, leaf in LedgerEntry.objects.filter(seq__lt=size).values_list("seq", "leaf_hash"):
        source.prepare([seq])
        assert len(source._blocks) <= 2  # the entry's block and the tree's ragged last one
        assert source.proof(seq, bytes(leaf)) == proofs.entry_inclusion_proof(seq, size)
    source.check_root()


@real
def test_it_verifies_with_the_real_writers(rich_source: Source, tmp_path: Path) -> None:
    path = make_bundle(rich_source, tmp_path / "bundle.zip")
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
    unpacked = unpack(path, tmp_path / "unpacked")
    assert system_verify(unpacked, script=unpacked / "verify.py")[0] == 0
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert {"pdf/transcript.pdf", "csv/messages.csv", "eml.zip", "rsmf.zip"} <= set(names)
    assert all(n.endswith(".eml") for n in nested_names(path, "eml.zip"))
    assert all(n.endswith(".rsmf") for n in nested_names(path, "rsmf.zip"))


@real
def test_it_keeps_a_hostile_file_name_inside(rich_source: Source, tmp_path: Path) -> None:
    path = make_bundle(rich_source, tmp_path / "bundle.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    names += nested_names(path, "eml.zip") + nested_names(path, "rsmf.zip")
    assert all(checked_name(name) == name for name in names)
    assert not any(".." in name.split("/") or name.startswith("/") for name in names)
    unpacked = unpack(path, tmp_path / "unpacked")
    assert {p.resolve().is_relative_to(unpacked.resolve()) for p in unpacked.rglob("*")} == {True}


@real
def test_it_is_byte_identical_with_the_real_writers(
    rich_source: Source, tmp_path: Path, settings: Any
) -> None:
    settings.TRANSCRIPT_SIGNING_CERT_FILE = ""  # unsigned: a signature carries its own time
    first = make_bundle(rich_source, tmp_path / "first.zip")
    second = make_bundle(rich_source, tmp_path / "second.zip")
    assert differing(first, second) == []
    assert first.read_bytes() == second.read_bytes()


def test_signing_the_transcript_changes_only_its_signature(
    rich_source: Source, tmp_path: Path
) -> None:
    first = make_bundle(rich_source, tmp_path / "first.zip")
    second = make_bundle(rich_source, tmp_path / "second.zip")
    transcript = "pdf/transcript.pdf"
    # Two signings in the same second may even agree; never does anything else differ.
    assert set(differing(first, second)) <= {
        "SHA256SUMS",
        "manifest.json",
        "manifest.sig",
        transcript,
    }
    with zipfile.ZipFile(first) as one, zipfile.ZipFile(second) as other:
        a, b = one.read(transcript), other.read(transcript)
    assert a[: a.index(b"%%EOF")] == b[: b.index(b"%%EOF")]  # the rendered revision


def test_its_zip_stream_holds_nothing_per_member(tmp_path: Path) -> None:
    """Nested as the bundle nests EML: what the writer holds after 70,000 members (past ZIP's
    65,535, so with ZIP64 end records) is what it held after 10,000, where zipfile would hold
    ~40 MB more of ZipInfo; zipfile and verify.py's strict reader accept both archives."""
    path, mine = tmp_path / "stream.zip", tracemalloc.Filter(True, bundle.__file__)
    tracemalloc.start()
    with bundle.zip_stream(path) as outer, outer.open("eml.zip") as sink:
        nested = bundle.ZipStream(sink, seekable=False)
        for n in range(70_000):
            if n == 10_000:
                before = tracemalloc.take_snapshot().filter_traces([mine])
            with nested.open(f"eml/c/{n}.eml") as out:
                out.write(b"Subject: %d\r\n" % n)
        after = tracemalloc.take_snapshot().filter_traces([mine])
        nested.close()
    tracemalloc.stop()
    assert sum(stat.size_diff for stat in after.compare_to(before, "filename")) < 4096
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None and archive.namelist() == ["eml.zip"]
        (tmp_path / "eml.zip").write_bytes(archive.read("eml.zip"))
    with zipfile.ZipFile(tmp_path / "eml.zip") as inner:
        assert len(inner.namelist()) == 70_000
        assert inner.read("eml/c/69999.eml") == b"Subject: 69999\r\n"
    verify = load_verify()
    for zipped in (path, tmp_path / "eml.zip"):
        with verify.Store() as store:
            strict = verify.Zip(zipped, store)
            assert all(verify.digest(strict, name)[0] >= 0 for name in strict.names)


def test_verify_py_holds_nothing_per_member(tmp_path: Path) -> None:
    """verify.py keeps a ZIP's members in its store (SQLite on disk), not in memory: reading
    and checking every member of 60,000 takes no more Python memory at its peak than of
    20,000 (each directory larger than the 1 MB block it is read in), where a dict of them
    took ~1.5 KB each (~60 MB more)."""
    verify, peaks = load_verify(), []
    for members in (20_000, 60_000):
        path = tmp_path / f"{members}.zip"
        with bundle.zip_stream(path) as target:
            for n in range(members):
                with target.open(f"attachments/{n:064x}.bin") as out:
                    out.write(b"%d" % n)
        tracemalloc.start()
        with verify.Store() as store:
            strict = verify.Zip(path, store)
            assert sum(verify.digest(strict, name)[0] for name in strict.names) > members
            assert len(strict.names) == members
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 256 * 1024, peaks


@pytest.mark.usefixtures("fake_writers")
def test_it_verifies_when_written_by_zipfile_too(rich_source: Source, tmp_path: Path) -> None:
    """The bundle in exports/target.py's ZipTarget (zipfile), as bundles were made before."""
    with zip_target(tmp_path / "bundle.zip") as target:
        bundle.write(rich_source, target)
    code, out = system_verify(tmp_path / "bundle.zip", "--key", checkpoints.verifier_key_text())
    assert code == 0, out


def load_verify() -> Any:
    spec = importlib.util.spec_from_file_location("bundle_verify_zip", VERIFY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("fake_writers")
def test_it_still_verifies_the_earlier_layout(
    rich_source: Source, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bundles made before EML and RSMF were nested list each of their files on its own."""
    monkeypatch.setattr(bundle, "NESTED", ())
    path = make_bundle(rich_source, tmp_path / "bundle.zip")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert "eml.zip" not in names and any(n.startswith("eml/") for n in names)
    code, out = system_verify(path, "--key", checkpoints.verifier_key_text())
    assert code == 0, out
