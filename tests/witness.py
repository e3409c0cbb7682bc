"""A real C2SP tlog-witness on loopback for the cosignature tests: a stdlib HTTP server that
applies add-checkpoint's rules as the specification states them, in the order it states them,
and cosigns with an Ed25519 key or (mldsa=True) an ML-DSA-44 key.

It shares no code with archive/: signed notes are read with tests/archive/independent_verifier.py,
consistency proofs are checked by `verify_consistency` below, written from RFC 9162 §2.1.4.2,
and the cosigned messages are built here again from tlog-cosignature, so a mistake in
archive.merkle or archive.witness cannot be mirrored here and pass unnoticed.

Fixture (registered in tests/conftest.py): `witness`, a running LoopbackWitness trusting our
checkpoint key for our origin, with settings.WITNESS_URLS/WITNESS_KEYS pointing at it;
`running(settings, tmp_path, mldsa=...)` starts one inside a test.
"""

import base64
import binascii
import json
import re
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mldsa import MLDSA44PrivateKey

from tests.archive.independent_verifier import (
    EM_DASH,
    VerifierKey,
    node_hash,
    parse_verifier_key,
    sha256,
)

DECIMAL = re.compile(r"0|[1-9][0-9]*")
MAX_PROOF_LINES = 63


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2, step by step, for 0 < first < second."""
    if not 0 < first < second or not proof:
        return False
    path = [first_hash, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_hash and sr == second_hash and sn == 0


class Refusal(Exception):
    def __init__(self, status: int, message: str, content_type: str = "text/plain") -> None:
        super().__init__(message)
        self.status, self.message, self.content_type = status, message, content_type


class LoopbackWitness:
    """One witness key, the logs it trusts, and its record of each log's latest checkpoint
    (kept in a JSON file, replaced atomically under a lock held from check to update)."""

    def __init__(
        self, logs: dict[str, list[VerifierKey]], state_file: Path, *, mldsa: bool = False
    ) -> None:
        self.logs, self.state_file, self.mldsa = logs, state_file, mldsa
        self.name = "witness.test/pq" if mldsa else "witness.test/w1"
        self.key = MLDSA44PrivateKey.generate() if mldsa else Ed25519PrivateKey.generate()
        kind = b"\x06" if mldsa else b"\x04"  # tlog-cosignature's vkey types
        raw = self.key.public_key().public_bytes_raw()
        self.key_id = sha256(self.name.encode(), b"\n", kind, raw)[:4]
        self.vkey = f"{self.name}+{self.key_id.hex()}+{base64.b64encode(kind + raw).decode()}"
        self.lock = threading.Lock()
        self.clock_offset = 0  # seconds added to its cosignatures' timestamps
        self.delay = 0.0  # seconds to wait before answering (a slow witness)
        self.requests: list[tuple[int, int]] = []  # (old size sent, status answered)
        self.url = ""

    # --- its record --------------------------------------------------------------------

    def latest(self, origin: str) -> tuple[int, bytes | None]:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        size, root = state.get(origin, (0, None))
        return size, base64.b64decode(root) if root else None

    def record(self, origin: str, size: int, root: bytes) -> None:
        state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        state[origin] = (size, base64.b64encode(root).decode())
        temporary = self.state_file.with_suffix(".tmp")
        temporary.write_text(json.dumps(state))
        temporary.replace(self.state_file)

    # --- add-checkpoint ----------------------------------------------------------------

    def add_checkpoint(self, body: bytes) -> str:
        """The cosignature line, or Refusal with the status the specification requires."""
        old, proof, note = parse_request(body)
        origin, size, root, text = self.verified_checkpoint(note)
        if old > size:
            raise Refusal(400, f"old size {old} is larger than the checkpoint's {size}")
        with self.lock:
            latest, latest_root = self.latest(origin)
            if old != latest:
                raise Refusal(409, f"{latest}\n", "text/x.tlog.size")
            if size == 0 and root != sha256(b""):
                raise Refusal(422, "a tree of size zero must have the empty root")
            if old == 0 and proof:
                raise Refusal(422, "a proof from size zero must be empty")
            if old == size and (proof or root != latest_root):
                raise Refusal(422, "same size, different root")
            if 0 < old < size and not verify_consistency(old, size, latest_root, root, proof):
                raise Refusal(422, "the consistency proof does not verify")
            self.record(origin, size, root)
        return self.cosignature(text, origin, size, root)

    def verified_checkpoint(self, note: str) -> tuple[str, int, bytes, str]:
        text, _, signatures = note.partition("\n\n")
        text += "\n"
        lines = text[:-1].split("\n")
        if len(lines) < 3 or not DECIMAL.fullmatch(lines[1]) or not signatures.endswith("\n"):
            raise Refusal(400, "not a checkpoint")
        try:
            root = base64.b64decode(lines[2], validate=True)
        except binascii.Error:
            raise Refusal(400, "the root is not base64") from None
        if lines[0] not in self.logs:
            raise Refusal(404, f"unknown log {lines[0]}")
        if not self.signed_by_the_log(text, signatures[:-1].split("\n"), self.logs[lines[0]]):
            raise Refusal(403, "no signature by the log's key")
        return lines[0], int(lines[1]), root, text

    def signed_by_the_log(self, text: str, signatures: list[str], keys: list[VerifierKey]) -> bool:
        good = False
        for line in signatures:
            name, _, encoded = line.removeprefix(EM_DASH + " ").partition(" ")
            try:
                blob = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            for key in keys:
                if (key.name, key.key_id) == (name, blob[:4]):
                    try:
                        key.public.verify(blob[4:], text.encode())
                    except InvalidSignature:
                        raise Refusal(403, f"the signature by {name} does not verify") from None
                    good = True
        return good

    def cosignature(self, text: str, origin: str, size: int, root: bytes) -> str:
        timestamp = int(time.time()) + self.clock_offset
        if self.mldsa:  # the cosigned_message struct, start 0 and end = size: the whole tree
            message = b"".join(
                [
                    b"subtree/v1\n\x00",
                    bytes([len(self.name)]) + self.name.encode(),
                    struct.pack(">Q", timestamp),
                    bytes([len(origin)]) + origin.encode(),
                    struct.pack(">QQ", 0, size),
                    root,
                ]
            )
        else:
            message = f"cosignature/v1\ntime {timestamp}\n{text}".encode()
        blob = self.key_id + struct.pack(">Q", timestamp) + self.key.sign(message)
        return f"{EM_DASH} {self.name} {base64.b64encode(blob).decode()}\n"


def parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Refusal(400, "the body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old ") or not DECIMAL.fullmatch(lines[0][4:]):
        raise Refusal(400, "the body does not start with an old size line")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise Refusal(400, "more than 63 proof lines")
    try:
        proof = [base64.b64decode(line, validate=True) for line in lines[1:]]
    except binascii.Error:
        raise Refusal(400, "a proof line is not base64") from None
    if any(len(h) != 32 for h in proof):
        raise Refusal(400, "a proof line is not a SHA-256 hash")
    return int(lines[0][4:]), proof, note


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the specification recommends
    server: "_Server"

    def do_POST(self) -> None:
        witness = self.server.witness
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(witness.delay)
        old = re.match(rb"old (\d+)\n", body)
        try:
            if self.path != "/w1/add-checkpoint":
                raise Refusal(404, "no such endpoint")
            status, content_type, reply = 200, "text/plain", witness.add_checkpoint(body)
        except Refusal as refusal:
            status, content_type, reply = refusal.status, refusal.content_type, refusal.message
        witness.requests.append((int(old[1]) if old else -1, status))
        payload = reply.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    witness: LoopbackWitness


def serve(witness: LoopbackWitness) -> _Server:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.witness = witness
    witness.url = f"http://127.0.0.1:{server.server_address[1]}/w1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@contextmanager
def running(settings: Any, tmp_path: Path, *, mldsa: bool = False) -> Iterator[LoopbackWitness]:
    """A witness trusting our checkpoint key, with WITNESS_URLS/WITNESS_KEYS set to it."""
    from archive import checkpoints

    ours = parse_verifier_key(checkpoints.verifier_key_text())
    state = tmp_path / f"witness-{'pq' if mldsa else 'w1'}.json"
    found = LoopbackWitness({checkpoints.key_name(): [ours]}, state, mldsa=mldsa)
    server = serve(found)
    settings.WITNESS_URLS = [found.url]
    settings.WITNESS_KEYS = [found.vkey]
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def witness(settings: Any, tmp_path: Path) -> Iterator[LoopbackWitness]:
    with running(settings, tmp_path) as found:
        yield found
