"""verify.py benchmark: its time and peak RSS on evidence bundles of BENCH_VERIFY_MESSAGES
(1,000, 10,000 and 100,000 by default) messages, each with an attachment, beside the bare
library reading the same ZIP and the same verify.py keeping its index in memory (as it does
when Python has no sqlite3, and as every version did before this benchmark).

The bundles are synthetic but in the real format, written by the real ZIP writer
(exports.bundle.zip_stream) and checked by the real verify.py to VERIFIED: every message is a
`message` entry with two disclosed contents and a `media.file` entry sealing its attachment,
so each message brings two entries with their inclusion proofs and one file, the shape that
made the verifier's memory grow (~2 KB a file). A real bundle has about one file per 35
messages (docs/SCALE.md §7m: 29,852 files for 1M messages), so these bundles hold ~35 times
more files per message than the archive's; they are built to test the memory, not to stand
for an export. The signing key is made for the run.

Each verify.py runs under the system python3 in a child of its own (peak RSS = its VmHWM).
The ceiling is zipfile reading and hashing every member of the same ZIP, nothing parsed or
proved. Building the bundle of 100,000 messages takes ~15 s here, verifying it ~12 s (~10 s
more with the index in memory); the default run ~50 s, with 1,000,000 ~8 min.

Environment: BENCH_VERIFY_MESSAGES (comma-separated; 1000,10000,100000). Figures:
docs/SCALE.md §7o.
"""

import base64
import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from archive import signing
from archive.checkpoints import checkpoint_body
from archive.envelope import Fact, build_envelope, commitment
from archive.merkle import InMemoryTree, inclusion_proof, leaf_hash
from exports import bundle
from tests.performance.conftest import Figure, record, say, seconds, table
from tests.performance.test_bench_bundle import run_verify, system_python

ROOT = Path(__file__).resolve().parents[2]
VERIFY = ROOT / "exports" / "verifier" / "verify.py"
SIZES = [int(n) for n in os.environ.get("BENCH_VERIFY_MESSAGES", "1000,10000,100000").split(",")]
KEY_NAME = "bench.clientwindow.local/ledger"
MIME = "application/pdf"
SEALED_AT = datetime(2026, 12, 5, tzinfo=UTC)


def content(kind: str, seq: int) -> bytes:
    return hashlib.shake_256(f"{kind}-{seq}".encode()).digest(64)


def attachment(seq: int) -> bytes:
    return content("attachment", seq)


def entry(seq: int) -> tuple[bytes, dict[str, object]]:
    """Entry `seq`: its envelope as the ledger builds it and its manifest item, without the
    proof. Even seqs are messages, each followed by the media file its attachment is."""
    if seq % 2 == 0:
        contents = {"wamid": b"wamid.bench-%d" % seq, "text": content("text", seq)}
        fact = Fact("message.received", {}, contents)
        item: dict[str, object] = {"role": "message", "message_seq": seq}
    else:
        data = attachment(seq)
        contents = {"sha256": hashlib.sha256(data).digest()}
        fact = Fact("media.file", {"size": len(data), "mime_type": MIME}, contents)
        item = {"role": "media"}
    salts = {name: hashlib.sha256(f"salt-{name}-{seq}".encode()).digest() for name in contents}
    commits = {name: commitment(name, salts[name], value) for name, value in contents.items()}
    envelope = build_envelope(seq, fact, SEALED_AT, commits)
    item.update(
        seq=seq,
        kind=fact.kind,
        envelope=envelope.decode(),
        leaf_hash=leaf_hash(envelope).hex(),
        contents={
            name: {"salt": salts[name].hex(), "content": base64.b64encode(value).decode()}
            for name, value in contents.items()
        },
    )
    return envelope, item


def write_bundle(path: Path, messages: int, key: Ed25519PrivateKey) -> None:
    """The bundle as exports/bundle.py lays it out, through its own writers (the ZIP stream,
    the listing of every file, the manifest's sections), from these synthetic entries."""
    size = 2 * messages
    tree = InMemoryTree(leaf_hash(entry(seq)[0]) for seq in range(size))
    root = tree.root()
    note = signing.sign_note(
        checkpoint_body(KEY_NAME, size, root, "2026-12-05T00:00:00Z"), KEY_NAME, key
    )
    public = key.public_key()
    verifier_key = signing.verifier_for(KEY_NAME, public).verifier_key
    with bundle.zip_stream(path) as target:
        listing = bundle._Listing(target, "")
        fixed = {
            "checkpoint.note": note.encode(),
            "public-key.pem": signing.public_key_pem(public).encode(),
            "verifier-key.txt": (verifier_key + "\n").encode(),
            "verify.py": VERIFY.read_bytes(),
        }
        attachments = []
        for seq in range(1, size, 2):
            data = attachment(seq)
            name = f"attachments/{sha(data)}.pdf"
            fixed[name] = data
            attachments.append(
                {
                    "file": name,
                    "sha256": sha(data),
                    "seq": seq,
                    "mime_type": MIME,
                    "size": len(data),
                }
            )
        for name, data in fixed.items():
            with listing.open(name) as out:
                out.write(data)
        header = {
            "format": bundle.FORMAT,
            "version": bundle.VERSION,
            "export": {
                "id": f"bench-{messages}",
                "scope": {},
                "counts": {"messages": messages, "attachments": messages, "files": listing.count},
            },
            "checkpoint": {
                "tree_size": size,
                "root": root.hex(),
                "note": note,
                "verifier_key": verifier_key,
                "timestamp": None,
            },
        }
        listed = ({"name": f.name, "size": f.size, "sha256": f.sha256} for f in listing.records())
        with listing.open(bundle.MANIFEST) as out:
            out.write((bundle.dumps(header)[:-1] + ",\n").encode())
            bundle._section(out, "files", listed)
            bundle._section(out, "attachments", attachments)
            bundle._section(out, "entries", proved(tree, size), last=True)
        body = f"{bundle.SIGNATURE_TITLE}\n{header['export']['id']}\n{listing.files[-1].sha256}\n"
        with target.open(bundle.SIGNATURE) as out:
            out.write(signing.sign_note(body, KEY_NAME, key).encode())


def proved(tree: InMemoryTree, size: int) -> Iterator[dict[str, object]]:
    """Every entry's manifest item with its inclusion proof, in seq order."""
    for seq in range(size):
        item = entry(seq)[1]
        item["proof"] = [node.hex() for node in inclusion_proof(seq, size, tree.subtree)]
        yield item


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


BARE = (
    "import hashlib, sys, zipfile\n"
    "with zipfile.ZipFile(sys.argv[1]) as archive:\n"
    "    for info in archive.infolist():\n"
    "        with archive.open(info) as member:\n"
    "            digest = hashlib.sha256()\n"
    "            while block := member.read(1 << 20):\n"
    "                digest.update(block)\n"
    "status = 0"
)


def test_verify_py(tmp_path: Path) -> None:
    key, rows = Ed25519PrivateKey.generate(), []
    pinned = signing.verifier_for(KEY_NAME, key.public_key()).verifier_key
    in_memory = tmp_path / "verify_in_memory.py"
    in_memory.write_text(
        VERIFY.read_text().replace("    import sqlite3\n", "    import sqlite3_left_out\n")
    )
    for messages in SIZES:
        path = tmp_path / f"bundle-{messages}.zip"
        began = time.perf_counter()
        write_bundle(path, messages, key)
        built = time.perf_counter() - began
        say(f"== {messages:,} messages: bundle built in {seconds(built)}")
        found = {}
        for label, script in (("verify.py", VERIFY), ("verify.py, index in memory", in_memory)):
            status, spent, rss, out = run_verify(path, pinned, script)
            assert status == 0 and "VERIFIED" in out, out[-2000:]  # correctness, not speed
            found[label] = (spent, rss)
        status, bare, bare_rss, out = system_python(BARE, str(path))
        assert status == 0, out
        (spent, rss), (memory_spent, memory_rss) = found.values()
        rows.append(
            [
                f"{messages:,} messages ({2 * messages:,} entries, {messages + 6:,} files,"
                f" {path.stat().st_size / 2**20:,.0f} MB)",
                f"{seconds(spent)}, {rss / 1024:,.0f} MB",
                f"{seconds(memory_spent)}, {memory_rss / 1024:,.0f} MB",
                f"{seconds(bare)}, {bare_rss / 1024:,.0f} MB",
            ]
        )
        record(
            Figure(
                f"verify.py, {messages:,} messages with attachments",
                spent,
                "s",
                ceiling=bare,
                ceiling_label="zipfile reads and hashes every member",
            )
        )
        path.unlink()
    headers = ["bundle", "verify.py (SQLite index)", "index in memory", "bare zipfile"]
    say(table(headers, rows, title="== verify.py: time and peak RSS (system python3)"))
