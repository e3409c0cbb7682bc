"""Witness cosignatures against a real tlog-witness on loopback (tests/witness.py): what is
submitted, what is kept, what a refusal leaves behind, and what verification finds later."""

import base64
import contextlib
import json
import logging
import socket
from pathlib import Path

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from archive import anchoring, checkpoints, ledger, signing
from archive import witness as cosigning
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact, rfc3339
from archive.merkle import InMemoryTree, consistency_proof, leaf_hash
from archive.models import AnchorTask, Checkpoint, Cosignature
from archive.verify import verify_ledger
from tests.archive.independent_verifier import mth
from tests.conftest import superuser_connect
from tests.witness import LoopbackWitness, Refusal, verify_consistency

ORIGIN = "clientwindow.local/ledger"


def grow(entries: int) -> Checkpoint:
    ledger.append([Fact("test.fact", {"n": n}) for n in range(entries)])
    return create_checkpoint()


def cosign_due() -> anchoring.RunResult:
    return anchoring.run_due(everything=True, duties=[AnchorTask.Duty.COSIGN])


def duty_error() -> str:
    return AnchorTask.objects.get(duty=AnchorTask.Duty.COSIGN).last_error


def other_witness_key(tmp_path) -> str:
    return LoopbackWitness({}, tmp_path / "other.json").vkey


# --- cosigning ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_cosigns_successive_checkpoints_with_consistency_proofs(witness):
    first = grow(5)
    assert cosign_due().done == 1
    second = grow(300)
    assert cosign_due().done == 1
    assert witness.requests == [(0, 200), (5, 200)]
    assert witness.latest(ORIGIN) == (305, bytes(second.root))
    kept = Cosignature.objects.order_by("checkpoint_id")
    assert [(c.checkpoint_id, c.witness) for c in kept] == [
        (first.tree_size, "witness.test/w1"),
        (second.tree_size, "witness.test/w1"),
    ]
    assert not AnchorTask.objects.filter(duty=AnchorTask.Duty.COSIGN).exists()


@pytest.mark.django_db
def test_it_keeps_the_line_the_witness_returned_and_what_it_says(witness):
    checkpoint = grow(3)
    cosign_due()
    kept = Cosignature.objects.get()
    parsed = cosigning.parse_cosignature(kept.line.rstrip("\n"))
    assert kept.line.startswith("\u2014 witness.test/w1 ") and kept.line.endswith("\n")
    assert (bytes(kept.key_id), kept.signed_at) == (witness.key_id, parsed.signed_at)
    assert abs((kept.signed_at - timezone.now()).total_seconds()) < 60
    key = cosigning.parse_witness_key(witness.vkey)
    assert key.verifies(cosigning.note_body(checkpoint.note), parsed.timestamp, parsed.signature)


@pytest.mark.django_db
def test_it_appends_the_cosignatures_to_the_note(witness):
    checkpoint = grow(3)
    cosign_due()
    note = cosigning.cosigned_note(checkpoint)
    assert note == checkpoint.note + Cosignature.objects.get().line
    assert signing.open_note(note, checkpoints.verifiers()) == cosigning.note_body(note)


@pytest.mark.django_db
def test_the_witness_refuses_a_forked_checkpoint_and_nothing_is_kept(witness):
    grow(10)
    cosign_due()
    ledger.append([Fact("test.fact")] * 10)
    forged_root = bytes(32)
    body = checkpoints.checkpoint_body(ORIGIN, 20, forged_root, rfc3339(timezone.now()))
    note = signing.sign_note(body, ORIGIN, checkpoints.signing_key())
    forged = Checkpoint.objects.create(
        tree_size=20, root=forged_root, note=note, created_at=timezone.now()
    )
    anchoring.plan(forged)
    assert cosign_due().failed == 1
    assert "HTTP 422 the consistency proof does not verify" in duty_error()
    assert not forged.cosignatures.exists()
    assert witness.latest(ORIGIN)[0] == 10


@pytest.mark.django_db
def test_the_witness_refuses_another_root_at_the_size_it_cosigned(witness):
    grow(7)
    witness.record(ORIGIN, 7, bytes(32))  # it cosigned a different tree of 7 entries
    cosign_due()
    assert witness.requests == [(0, 409), (7, 422)]
    assert "HTTP 422 same size, different root" in duty_error()
    assert not Cosignature.objects.exists()


@pytest.mark.django_db
def test_it_catches_up_when_its_record_of_the_witness_is_stale(witness):
    first = grow(10)
    witness.record(ORIGIN, 10, bytes(first.root))  # cosigned, but the reply was lost
    grow(290)
    assert cosign_due().done == 1
    assert witness.requests == [(0, 409), (10, 200)]
    assert list(Cosignature.objects.values_list("checkpoint_id", flat=True)) == [300]


@pytest.mark.django_db
def test_it_says_when_the_witness_has_seen_a_larger_tree(witness, caplog):
    grow(20)
    witness.record(ORIGIN, 50, bytes(32))
    with caplog.at_level(logging.ERROR, logger="archive.witness"):
        assert cosign_due().failed == 1
    assert duty_error() == "witness has seen a larger tree than ours: 50"
    assert "has cosigned 50 entries, our checkpoint 20" in caplog.text
    assert witness.requests == [(0, 409)]


@pytest.mark.django_db
def test_it_keeps_the_reason_when_the_witness_is_down(witness, settings):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        settings.WITNESS_URLS = [f"http://127.0.0.1:{unused.getsockname()[1]}/w1"]
        grow(4)
        assert cosign_due().failed == 1
    task = AnchorTask.objects.get(duty=AnchorTask.Duty.COSIGN)
    assert task.attempts == 1
    assert task.last_error.startswith(f"witness {settings.WITNESS_URLS[0]} could not be reached")
    assert not Cosignature.objects.exists()


@pytest.mark.django_db
def test_it_gives_up_on_a_witness_that_does_not_answer_in_time(witness, settings):
    settings.WITNESS_TIMEOUT = 1
    witness.delay = 1.5
    grow(4)
    assert cosign_due().failed == 1
    assert duty_error().endswith("could not be reached: no answer within 1 s")


@pytest.mark.django_db
def test_it_names_the_status_of_a_witness_that_does_not_know_us(witness):
    witness.logs.clear()
    grow(4)
    cosign_due()
    assert duty_error() == (
        f"witness {witness.url} refused the checkpoint: HTTP 404 unknown log {ORIGIN}"
    )


@pytest.mark.django_db
def test_it_refuses_a_cosignature_dated_in_the_future(witness):
    witness.clock_offset = 3600
    grow(4)
    cosign_due()
    assert "cosignature by witness.test/w1 is dated" in duty_error()
    assert not Cosignature.objects.exists()


@pytest.mark.django_db
def test_it_ignores_cosignatures_by_keys_it_does_not_trust(witness, settings, tmp_path):
    settings.WITNESS_KEYS = [other_witness_key(tmp_path)]
    grow(4)
    cosign_due()
    assert duty_error().endswith("it returned none by a key in WITNESS_KEYS")
    assert not Cosignature.objects.exists()


@pytest.mark.django_db
@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(growth=st.lists(st.integers(1, 300), min_size=1, max_size=3))
def test_the_witness_accepts_every_proof_for_a_growing_tree(witness, growth):
    for entries in growth:  # the ledger and the witness's record carry over between examples
        checkpoint = grow(entries)
        cosigning.cosign(checkpoint, witness.url)
        assert witness.requests[-1][1] == 200
        assert checkpoint.cosignatures.count() == 1


# --- the witness's own proof check (RFC 9162), against our proofs --------------------------


@hypothesis_settings(max_examples=300, deadline=None)
@given(sizes=st.tuples(st.integers(1, 700), st.integers(1, 700)).filter(lambda s: s[0] < s[1]))
def test_our_consistency_proofs_pass_the_independent_check(sizes):
    old, new = sizes
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(new)]
    proof = consistency_proof(old, new, InMemoryTree(leaves).subtree)
    assert verify_consistency(old, new, mth(leaves[:old]), mth(leaves), proof)


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    sizes=st.tuples(st.integers(1, 300), st.integers(1, 300)).filter(lambda s: s[0] < s[1]),
    pick=st.floats(0, 1, exclude_max=True),
    bit=st.integers(0, 255),
)
def test_the_independent_check_refuses_a_changed_proof(sizes, pick, bit):
    old, new = sizes
    leaves = [leaf_hash(n.to_bytes(4, "big")) for n in range(new)]
    proof = consistency_proof(old, new, InMemoryTree(leaves).subtree)
    at = int(pick * len(proof))
    changed = bytearray(proof[at])
    changed[bit // 8] ^= 1 << (bit % 8)
    proof[at] = bytes(changed)
    assert not verify_consistency(old, new, mth(leaves[:old]), mth(leaves), proof)


VECTORS = sorted((Path(__file__).parent / "rfc6962_vectors" / "consistency").rglob("*.json"))
PROPER = [p for p in VECTORS if 0 < (v := json.loads(p.read_text()))["size1"] < v["size2"]]


@pytest.mark.parametrize("path", PROPER, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_independent_check_agrees_with_the_transparency_dev_vectors(path):
    vector = json.loads(path.read_text())
    hashes = [base64.b64decode(h) for h in vector["proof"] or []]
    root1, root2 = (base64.b64decode(vector[k] or "") for k in ("root1", "root2"))
    verdict = verify_consistency(vector["size1"], vector["size2"], root1, root2, hashes)
    assert verdict is not vector["wantErr"]


ZERO_HASH = base64.b64encode(bytes(32)).decode()


def flip_last_signature_byte(note: str) -> str:
    head, encoded = note[:-1].rsplit(" ", 1)
    blob = bytearray(base64.b64decode(encoded))
    blob[-1] ^= 1
    return f"{head} {base64.b64encode(blob).decode()}\n"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "status"),
    [
        (lambda body: body.replace("old 0\n", "old 99\n"), 400),
        (lambda body: body.replace("old 0\n", f"old 0\n{ZERO_HASH}\n"), 422),
        (flip_last_signature_byte, 403),
        (lambda body: body.replace("\u2014 clientwindow.local/ledger", "\u2014 someone.else"), 403),
    ],
    ids=[
        "old size above the checkpoint",
        "a proof from zero",
        "a bad log signature",
        "no log signature",
    ],
)
def test_the_loopback_witness_refuses_as_the_specification_says(witness, change, status):
    body = "old 0\n\n" + grow(5).note
    with pytest.raises(Refusal) as refused:
        witness.add_checkpoint(change(body).encode())
    assert refused.value.status == status
    assert witness.latest(ORIGIN) == (0, None)


# --- verification ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_verification_names_who_cosigned_each_checkpoint(witness):
    grow(3)
    cosign_due()
    grow(3)
    report = verify_ledger(workers=1)
    assert report.intact, report.problems
    signed = report.anchors[3]["cosignatures"]
    assert signed.startswith("witness.test/w1 at ") and signed.endswith("Z")
    assert report.anchors[6]["cosignatures"] == "none"


@pytest.mark.django_db
def test_verification_cannot_check_a_cosignature_by_an_unknown_key(witness, settings, tmp_path):
    grow(3)
    cosign_due()
    settings.WITNESS_KEYS = [other_witness_key(tmp_path)]
    problems = [str(p) for p in verify_ledger(workers=1).problems]
    assert problems == [
        "checkpoint 3: cosignature by witness.test/w1 cannot be checked: no WITNESS_KEYS entry"
    ]


def test_verification_catches_a_tampered_cosignature(committed, witness):
    grow(3)
    cosign_due()
    tampered = flip_last_signature_byte(Cosignature.objects.get().line)
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE archive_cosignature SET line = %s", [tampered])
    problems = [str(p) for p in verify_ledger(workers=1).problems]
    assert problems == ["checkpoint 3: cosignature by witness.test/w1 does not verify"]


# --- keys and configuration -----------------------------------------------------------------


def test_it_reads_a_witness_key(tmp_path):
    vkey = other_witness_key(tmp_path)
    key = cosigning.parse_witness_key(vkey)
    assert (key.name, key.key_id.hex()) == ("witness.test/w1", vkey.split("+")[1])


def test_it_refuses_a_note_key_as_a_witness_key():
    ours = checkpoints.verifier_key_text()  # type 0x01: a log's key, not a cosigner's
    with pytest.raises(cosigning.WitnessKeyError, match="not an Ed25519 cosignature key"):
        cosigning.parse_witness_key(ours)


def test_it_refuses_a_witness_key_whose_id_does_not_match(tmp_path):
    name, key_id, key = other_witness_key(tmp_path).split("+", 2)
    with pytest.raises(cosigning.WitnessKeyError, match="key id does not match"):
        cosigning.parse_witness_key(f"{name}+{int(key_id, 16) ^ 1:08x}+{key}")


@given(st.text())
def test_reading_any_key_or_signature_line_fails_only_plainly(text):
    with pytest.raises(ValueError):
        cosigning.parse_witness_key(text)
    with contextlib.suppress(ValueError):
        cosigning.parse_cosignature(text)


def test_the_check_wants_keys_for_configured_witnesses(settings):
    settings.WITNESS_URLS = ["https://witness.example/w1"]
    settings.WITNESS_KEYS = []
    assert [e.id for e in cosigning.check_witness_keys()] == ["archive.E006"]
    settings.WITNESS_KEYS = [checkpoints.verifier_key_text()]
    (error,) = cosigning.check_witness_keys()
    assert "malformed entry" in error.msg and error.id == "archive.E006"


def test_the_check_is_quiet_without_witnesses_or_with_good_keys(settings, tmp_path):
    settings.WITNESS_URLS = []
    settings.WITNESS_KEYS = []
    assert cosigning.check_witness_keys() == []
    settings.WITNESS_URLS = ["https://witness.example/w1"]
    settings.WITNESS_KEYS = [other_witness_key(tmp_path)]
    assert cosigning.check_witness_keys() == []
