"""verify.py, the bundle's stand-alone verifier: it accepts a fresh bundle and rejects any byte
changed anywhere in it, zipped or unpacked; its Ed25519 and RFC 9162 code agree with the
references; the OpenSSL recipe in VERIFY.md works as written.

Flipped bundles are checked by the repository's copy of verify.py, imported (fast) and, for a
few, run by the system python3: an auditor who suspects a bundle runs a copy they trust, since a
forger would change the bundle's verify.py as well."""

import ast
import contextlib
import hashlib
import importlib.util
import io
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archive import checkpoints, signing
from archive.merkle import InMemoryTree, inclusion_proof, leaf_hash
from exports import bundle, formats
from exports.scope import Scope
from exports.source import Source
from tests.exports.conftest import Rich
from tests.exports.test_bundle import (
    MISSING,
    VERIFY,
    fake_write,
    make_bundle,
    system_verify,
    unpack,
)


def load_verifier() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bundle_verify", VERIFY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verifier = load_verifier()
SLOW = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def run(target: Path, *args: str) -> tuple[int, str]:
    """The trusted copy of verify.py, in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = verifier.main([str(target), *args])
    return code, out.getvalue()


def use_fake_writers(monkeypatch: pytest.MonkeyPatch) -> None:
    real_writer = formats.writer
    monkeypatch.setattr(
        formats, "writer", lambda f: real_writer(f) if f == "bundle" else fake_write(f)
    )


@pytest.fixture
def bundle_zip(
    rich: Rich, make_source: Callable[..., Source], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The rich conversation's bundle, with stand-in writers (fast)."""
    use_fake_writers(monkeypatch)
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    return make_bundle(source, tmp_path / "bundle.zip")


@pytest.fixture
def full_zip(
    rich: Rich, make_source: Callable[..., Source], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The same with the real writers (the PDF, EML, RSMF, CSV), once they have all landed."""
    if MISSING:
        use_fake_writers(monkeypatch)
    source = make_source(Scope.for_conversation(rich.conversation.pk))
    return make_bundle(source, tmp_path / "bundle.zip")


@pytest.fixture
def unpacked(bundle_zip: Path, tmp_path: Path) -> Path:
    return unpack(bundle_zip, tmp_path / "unpacked")


@pytest.fixture
def full_unpacked(full_zip: Path, tmp_path: Path) -> Path:
    return unpack(full_zip, tmp_path / "unpacked")


@contextlib.contextmanager
def flipped(path: Path, offset: int, mask: int = 0xFF) -> Iterator[None]:
    """One byte of `path` changed for the duration of the block."""
    data = bytearray(path.read_bytes())
    original = bytes(data)
    data[offset] ^= mask
    path.write_bytes(bytes(data))
    try:
        yield
    finally:
        path.write_bytes(original)


def files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_it_fails_on_a_byte_changed_in_any_file(full_unpacked: Path) -> None:
    unpacked = full_unpacked
    assert run(unpacked)[0] == 0
    members = files(unpacked)
    assert {"manifest.json", "manifest.sig", "verify.py", "VERIFY.md"} <= {p.name for p in members}
    for path in members:
        size = path.stat().st_size
        for offset in sorted({0, size // 2, size - 1} if size else ()):
            with flipped(path, offset):
                code, out = run(unpacked)
            assert code == 1, f"{path.relative_to(unpacked)}@{offset}: {out}"
            assert "FAIL:" in out


def test_it_fails_on_a_changed_key_even_when_pinned(unpacked: Path) -> None:
    key = checkpoints.verifier_key_text()
    for name in ("verifier-key.txt", "public-key.pem", "checkpoint.note", "manifest.sig"):
        path = unpacked / name
        for offset in range(path.stat().st_size):
            with flipped(path, offset, 0x01):
                assert run(unpacked, "--key", key)[0] == 1, f"{name}@{offset}"


def test_it_fails_on_bytes_changed_across_the_zip(full_zip: Path) -> None:
    bundle_zip = full_zip
    assert run(bundle_zip)[0] == 0
    size = bundle_zip.stat().st_size
    spread = {*range(0, size, max(1, size // 250)), *range(0, 120), *range(size - 400, size)}
    for offset in sorted(o for o in spread if 0 <= o < size):
        with flipped(bundle_zip, offset):
            code, out = run(bundle_zip)
        assert code == 1, f"offset {offset}: {out}"


@SLOW
@given(position=st.floats(0, 1, exclude_max=True))
def test_it_fails_wherever_a_zip_byte_changes(bundle_zip: Path, position: float) -> None:
    offset = int(position * bundle_zip.stat().st_size)
    with flipped(bundle_zip, offset):
        assert run(bundle_zip)[0] == 1, f"offset {offset}"


@SLOW
@given(pick=st.floats(0, 1, exclude_max=True), at=st.floats(0, 1), mask=st.integers(1, 255))
def test_it_fails_wherever_a_file_byte_changes(
    unpacked: Path, pick: float, at: float, mask: int
) -> None:
    members = files(unpacked)
    path = members[int(pick * len(members))]
    offset = min(int(at * path.stat().st_size), path.stat().st_size - 1)
    with flipped(path, offset, mask):
        assert run(unpacked)[0] == 1, f"{path.name}@{offset}^{mask}"


def test_the_system_python_exits_1_naming_the_failure(bundle_zip: Path, unpacked: Path) -> None:
    with flipped(unpacked / "manifest.json", 40):
        code, out = system_verify(unpacked)
    assert code == 1 and "FAIL: manifest.json has SHA-256" in out
    with flipped(bundle_zip, bundle_zip.stat().st_size // 2):
        assert system_verify(bundle_zip)[0] == 1
    code, out = system_verify(bundle_zip.parent / "nothing.zip")
    assert code == 1 and "no such file" in out


def test_it_warns_when_the_key_is_not_pinned(bundle_zip: Path) -> None:
    code, out = run(bundle_zip)
    assert code == 0 and "WARNING: no --key given" in out and "not pinned" in out


def test_it_fails_with_another_pinned_key(bundle_zip: Path, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    key = signing.verifier_for(checkpoints.key_name(), other).verifier_key
    (tmp_path / "published.txt").write_text(key + "\n")
    code, out = run(bundle_zip, "--key", str(tmp_path / "published.txt"))
    assert code == 1 and "not with the pinned key" in out


def test_it_refuses_a_file_the_manifest_does_not_list(unpacked: Path) -> None:
    (unpacked / "eml" / "extra.eml").parent.mkdir(exist_ok=True)
    (unpacked / "eml" / "extra.eml").write_bytes(b"Subject: planted\r\n")
    code, out = run(unpacked)
    assert code == 1 and "eml/extra.eml is in the bundle, but the manifest does not list it" in out


def test_it_refuses_a_missing_file(unpacked: Path) -> None:
    (unpacked / "SHA256SUMS").unlink()
    assert "SHA256SUMS is listed in the manifest, but missing" in run(unpacked)[1]


def test_it_refuses_unsafe_names_in_a_zip(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as archive:
        archive.writestr("../../etc/passwd", b"root:x:0:0")
    code, out = run(hostile)
    assert code == 1 and "unsafe file name '../../etc/passwd'" in out


def test_it_refuses_a_symbolic_link(unpacked: Path) -> None:
    (unpacked / "link").symlink_to("/etc/passwd")
    assert "link: not a regular file" in run(unpacked)[1]


def test_it_says_whether_it_is_the_bundles_own_copy(bundle_zip: Path, tmp_path: Path) -> None:
    assert "this verify.py is the copy the manifest lists" in run(bundle_zip)[1]
    copy = tmp_path / "my-verify.py"
    copy.write_text(VERIFY.read_text() + "# my own audited copy\n")
    code, out = system_verify(bundle_zip, script=copy)
    assert code == 0 and "this verify.py is not the bundle's copy" in out


def test_it_runs_on_python_3_9() -> None:
    source = VERIFY.read_text()
    ast.parse(source, feature_version=(3, 9))
    for newer in ("bit_count", "strict=", "datetime.UTC", "removeprefix", "kw_only"):
        assert newer not in source, newer
    imported = {
        n.names[0].name.split(".")[0]
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Import)
    }
    assert imported <= {
        "argparse",
        "base64",
        "binascii",
        "hashlib",
        "json",
        "os",
        "sqlite3",
        "struct",
        "sys",
        "tempfile",
        "zlib",
    }


# --------------------------------------------------------------------------- the primitives

RFC8032_TEST_1 = (  # RFC 8032 §7.1, TEST 1: secret key, public key, signature of the empty message
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
)


def test_its_ed25519_passes_rfc_8032_test_1() -> None:
    _, public, signature = (bytes.fromhex(h) for h in RFC8032_TEST_1)
    assert verifier.ed25519_verify(public, b"", signature)
    assert not verifier.ed25519_verify(public, b"\x00", signature)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    message=st.binary(max_size=300),
    flip=st.integers(0, 511),
)
def test_its_ed25519_agrees_with_cryptography(seed: bytes, message: bytes, flip: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(seed)
    signature = key.sign(message)
    assert verifier.ed25519_verify(raw_public(key), message, signature)
    broken = bytearray(signature)
    broken[flip % 64] ^= 1 << (flip // 64)
    assert not verifier.ed25519_verify(raw_public(key), message, bytes(broken))
    assert not verifier.ed25519_verify(raw_public(key), message + b"!", signature)
    other = Ed25519PrivateKey.generate()
    assert not verifier.ed25519_verify(raw_public(other), message, signature)


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 600), pick=st.floats(0, 1, exclude_max=True))
def test_its_inclusion_proofs_agree_with_archive_merkle(size: int, pick: float) -> None:
    tree = InMemoryTree(leaf_hash(n.to_bytes(4, "big")) for n in range(size))
    index = int(pick * size)
    proof = inclusion_proof(index, size, tree.subtree)
    leaf = leaf_hash(index.to_bytes(4, "big"))
    assert verifier.root_from_proof(leaf, index, size, proof) == tree.root()
    assert verifier.root_from_proof(bytes(32), index, size, proof) != tree.root()
    with pytest.raises(verifier.Failure):
        verifier.root_from_proof(leaf, index, size, [*proof, bytes(32)])


# --------------------------------------------------------------------------- VERIFY.md


def recipes() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (VERIFY.parent / "VERIFY.md").read_text(), re.S)


def shell(script: str, where: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_openssl_recipe_checks_the_checkpoint(unpacked: Path) -> None:
    checkpoint = recipes()[0]
    done = shell(checkpoint, unpacked)
    assert done.returncode == 0, done.stderr
    assert "Signature Verified Successfully" in done.stdout
    note = unpacked / "checkpoint.note"
    note.write_text(note.read_text().replace("\n", "\n9", 1))  # another tree size
    assert shell(checkpoint, unpacked).returncode != 0


def test_the_manual_recipes_check_the_manifest_files_and_keys(unpacked: Path) -> None:
    _, manifest, keys, _ = recipes()[:4]  # §3; §4's timestamp has its own test file
    done = shell(manifest, unpacked)
    assert done.returncode == 0, done.stderr
    assert "manifest.json is the signed manifest" in done.stdout
    assert "every file matches SHA256SUMS" in done.stdout
    first, second = shell(keys, unpacked).stdout.split("\n")[:2]
    assert first == second and len(first) == 44
    (unpacked / "manifest.json").write_bytes(b" " + (unpacked / "manifest.json").read_bytes())
    assert "manifest.json is NOT the signed one" in shell(manifest, unpacked).stdout


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("xxd") is None, reason="jq, xxd")
def test_the_manual_recipe_checks_an_entry(unpacked: Path) -> None:
    entry = recipes()[3]
    envelope, leaf, commitment = shell(entry, unpacked).stdout.splitlines()
    manifest: dict[str, Any] = json.loads((unpacked / "manifest.json").read_text())
    assert envelope == manifest["entries"][0]["envelope"]
    assert leaf.split()[0] == manifest["entries"][0]["leaf_hash"]
    assert commitment.split()[0] == json.loads(envelope)["commit.text"]


@settings(max_examples=100, deadline=None)
@given(seqs=st.lists(st.integers(0, 99), max_size=60))
def test_the_entries_it_has_met_are_a_set_in_either_store(seqs: list[int]) -> None:
    with verifier.Store() as store:
        for tally in (verifier.Tally(seen=store.seqs()), verifier.Tally()):  # SQLite, memory
            met: set[int] = set()
            for seq in seqs:
                assert tally.first_time(seq) == (seq not in met)
                met.add(seq)


# --------------------------------------------------------------------------- what it remembers


def resign(root: Path, edit: Callable[[dict[str, list[dict[str, Any]]]], None]) -> None:
    """Edit an unpacked bundle's manifest sections and sign it again with the archive's key, as
    a faulty writer would have: only the checks after the signature can catch what `edit` did."""
    path = root / bundle.MANIFEST
    header = json.loads(path.read_text())
    sections = {name: header.pop(name) for name in ("files", "attachments", "entries")}
    edit(sections)
    with path.open("wb") as out:  # laid out as exports/bundle.py writes it
        out.write((bundle.dumps(header)[:-1] + ",\n").encode())
        for name, items in sections.items():
            bundle._section(out, name, items, last=name == "entries")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    body = f"{bundle.SIGNATURE_TITLE}\n{header['export']['id']}\n{sha}\n"
    note = signing.sign_note(body, checkpoints.key_name(), checkpoints.signing_key())
    (root / bundle.SIGNATURE).write_text(note)


def media_entry(sections: dict[str, list[dict[str, Any]]]) -> int:
    return next(n for n, item in enumerate(sections["entries"]) if item["role"] == "media")


FAULTS: dict[str, tuple[Callable[[dict[str, list[dict[str, Any]]]], None], str]] = {
    "a file listed twice": (
        lambda s: s["files"].insert(1, s["files"][0]),
        "is listed twice",
    ),
    "an entry twice": (
        lambda s: s["entries"].insert(2, s["entries"][1]),
        "appears twice",
    ),
    "a media file no entry seals": (
        lambda s: s["entries"].pop(media_entry(s)),
        "no ledger entry in the manifest seals it",
    ),
    "a media file listed under another entry": (
        lambda s: s["attachments"][0].update(seq=s["attachments"][0]["seq"] + 10**6),
        "a media file the manifest's attachments do not list",
    ),
    "an attachment named twice": (
        lambda s: s["attachments"].append(s["attachments"][0]),
        "is not a listed file with this size and SHA-256",
    ),
    "an attachment not named": (
        lambda s: s["attachments"].pop(),
        "is not in the manifest's attachments",
    ),
}


@pytest.mark.parametrize("store", ["sqlite3", "memory"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_it_finds_what_it_must_remember_in_either_store(
    unpacked: Path, fault: str, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What is checked across the whole bundle (each file and entry once, each media file
    sealed) is kept on disk in SQLite, or in memory where Python has no sqlite3."""
    if store == "memory":
        monkeypatch.setattr(verifier, "sqlite3", None)
    assert run(unpacked)[0] == 0
    edit, failure = FAULTS[fault]
    resign(unpacked, edit)
    code, out = run(unpacked)
    assert code == 1 and failure in out.splitlines()[-1], out


def test_the_system_python_verifies_without_sqlite3(bundle_zip: Path, tmp_path: Path) -> None:
    script = tmp_path / "verify.py"
    script.write_text(
        VERIFY.read_text().replace("    import sqlite3\n", "    import sqlite3_is_not_here\n")
    )
    code, out = system_verify(bundle_zip, script=script)
    assert code == 0 and "VERIFIED" in out, out
    assert "note this Python has no sqlite3 module: the index of files and entries is kept" in out


def test_it_keeps_its_index_in_memory_where_no_temporary_directory_can_be_made(
    bundle_zip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(**_: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/tmp")

    monkeypatch.setattr(verifier.tempfile, "TemporaryDirectory", refused)
    code, out = run(bundle_zip)
    assert code == 0 and "VERIFIED" in out, out
    assert "note no temporary database could be made ([Errno 13] Permission denied" in out


def test_it_refuses_a_zip_member_twice(tmp_path: Path) -> None:
    path = tmp_path / "twice.zip"
    with bundle.zip_stream(path) as target:
        for content in (b"first", b"second"):
            with target.open("manifest.json") as out:
                out.write(content)
    code, out = run(path)
    assert code == 1 and "ZIP: manifest.json appears twice" in out, out
