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
from tests.witness import LoopbackWitness, Refusal, running, verify_consistency

ORIGIN = "clientwindow.local/ledger"
FIXED_WITNESS_KEY = LoopbackWitness({}, Path("never-written.json")).vkey


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
    assert key.verifies(cosigning.note_body(checkpoint.note), parsed)


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
@pytest.mark.parametrize("ahead", [3600, 2**40], ids=["an hour", "beyond any calendar"])
def test_it_refuses_a_cosignature_dated_in_the_future(witness, ahead):
    witness.clock_offset = ahead
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


@pytest.mark.django_db
def test_verification_names_a_row_that_differs_from_its_line(witness):
    grow(3)
    cosign_due()
    kept = Cosignature.objects.get()
    name, encoded = kept.line.rstrip("\n").split(" ")[1:]
    blob = base64.b64decode(encoded)
    later = blob[:4] + (2**62).to_bytes(8, "big") + blob[12:]
    Cosignature.objects.create(  # an inserted row: the runtime role may insert, not update
        checkpoint_id=3,
        witness=name + "2",
        key_id=blob[:4],
        line=f"\u2014 {name} {base64.b64encode(later).decode()}\n",
        signed_at=kept.signed_at,
        received_at=kept.received_at,
    )
    problems = [str(p) for p in verify_ledger(workers=1).problems]
    assert problems == [
        "checkpoint 3: cosignature by witness.test/w12: its row differs from its signature line"
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
    with pytest.raises(
        cosigning.WitnessKeyError, match=r"or ML-DSA-44 \(type 0x06\) cosignature key"
    ):
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


@given(timestamp=st.integers(0, 2**64 - 1), signature=st.binary(min_size=64, max_size=64))
def test_a_forged_cosignature_never_verifies_and_never_crashes(timestamp, signature):
    key = cosigning.parse_witness_key(FIXED_WITNESS_KEY)
    blob = key.key_id + timestamp.to_bytes(8, "big") + signature
    parsed = cosigning.parse_cosignature(f"\u2014 {key.name} {base64.b64encode(blob).decode()}")
    assert parsed.timestamp == timestamp
    assert not key.verifies("example.com/log\n1\n" + ZERO_HASH + "\n", parsed)


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


# --- ML-DSA-44 ------------------------------------------------------------------------------

# An ML-DSA-44 signature line in tlog-cosignature's format (type 0x06, timestamp 0) over a
# one-entry checkpoint, with its vkey: from filippo.io/torchwood (ISC licence, Copyright 2023
# The Torchwood Authors), cmd/litewitness/testdata/mldsa.txt. It pins our reading of the
# subtree/v1 message (and FIPS 204's empty context) to another implementation's bytes.
TORCHWOOD_NOTE_BODY = "example.com/mldsa-log\n1\n+zoErtsZtGO6sfiSV/v4UJSIyowisE8hvjw0q5+bD38=\n"
TORCHWOOD_VKEY = (
    "example.com/mldsa-log+b5df45c5+"
    "BuhtcL97l3dcitjZ8Y9J54gmQ1TWn/BMF0yePKpTzhlFCkN6ouJDf+9kT9wve4/Y+JGXBUjlRvktAynZ6XOQSO+f"
    "OaxyPOQAwrtbZKYXnZWSQj9gHPz18q6brnckUv87Rsk/m5GIBvH8J3ymxZjUQS+DnAUIbctLsG2DD6I/ou0JtXpP"
    "LvfGhPDTkwc9QeFyBLBa02Pr9uuWCMohciLqRiFUo5+leUUDKba1g5TYjOjK/VKfntpdbEwoqhTJTG4armjUeXdr"
    "YDHeaaMaCAnW5F0lMWYsHjqzRpKjeTjgItseaWKSm+ga/mzTAgqsbo5Ob/AwaXf4Av7/mN+ZM6vHON/NE7Ip5vpX"
    "pCiNb9YbEQavn+fjNucFxffCacvzXghvaaQ+3C/5h5lpR8jeajBFsFIOvdkYKizt29lCjqZDkYQgVfB9nWeH6rba"
    "yMkBdDpmRH03cI+urD0Eb5zvRuGJn3PgfwdyQJ3WcDH5Gqn5dkKs5NIVMBC+FfKeD47ruAIruda4JiiYCAxZbWgw"
    "zTI80N5lZFHEndmxKWaw6z/QyphuYkNyvZVZ0R3kH3JN4jdy9KKpNtFoQqnoBTGeEE/fXEEs5ByPlKnrrefRgWTq"
    "xssE4nPzHHr5GGgv/NKNTXNKI4LvNPH5yO3Vv/gIiDZxPPc1Jen8uKkmc0s3kT7XtcuWTlb+zdQeSme9ODj0IoVu"
    "29Eav2OsGJpReX7vZx9i2fVfHEMHY5nFew8L5RxcWmZFFiYhMFZnLvk/SWmHcwr3DhzZchrODhabHQ+S6S49Ws+5"
    "aoBBPM3mOrSSKHgobdI7BJrdzdT07kjzyiyS9Gyv8iylUHHMuuh1O05RNRcX5SXmenwGDPcT9HuLS+hoesO0FQgE"
    "t+jAR7vVyUUU2C6g6FC6QNfHL/EUsulvYIAS5fOK7acOeVnoJlpI57Bq+uzLZm6g7IZD0xxQwZPYyT4ek99l9HxD"
    "SrVnU0rAr+Tq5vVh5YxvDkQVWroYIWek/AI5awjmhgpW4LPapBhLk2ipkF5CmU3T0cm3ET5f14gYQZfz23nCsmZ7"
    "qyqiQilgOxJzVYacVoGAStGzJNY1wEf26MADW5McyQzYI/3Fpaa4Ay6p2yFmcJMfpqZnu4flgWMqN1UpMbbJ6I7h"
    "OrCFWryExK/nvSbRrErHTkPz2wvVfI+enbFz86c0iNb7naQKv6LoIZYEHFOCEsWGL/sCChn6BR4nk1qAakyXEQwi"
    "96CkIa3AX562F8lhw6CU4x7T+NWqi2AWfEXImJenORhMP69hGIFsiLAVIjHtsWtJOi8cu+Brg1bFERkB4ryUTrLf"
    "/jFeb6KifZ+s8PZWclDaOLMINZ3E78a5u6AzgXpigJsAJ1A4BY89muedrW2O8kFyh3TTTKyY4kedCW6L+8bFHV2G"
    "ce25ZulNC1mZs41XAI9CteeYaWaiL7uGMXgyQ73wr4ftwAEMdsoQVQsQriutS1AhpBGvjzPCwD5LC5p1fa0WXBQ1"
    "puuaNqr3IJodmDLhEIAsZcv1gdXMg8EQg9QLqgLLrBijU3GxFUQllS8lpQ4TLwFYUJ41+qt28JEeky/VzSEeQd/q"
    "ob8cbyNM44o7INB+lbhEXEGWvVO8Ak+uWMY+PRKeY9OQcE6E27Nf3eUoHQXkwmXkjGgj0NKeXBIJc1k/Ws6WDbsU"
    "4graVKk5FQjwULcRngOpyiJQ/n8sObkAPXr+1rImK3lQJnxif/B6p5/tsh4rrcUht4yVIvFAaqsgAAE="
)
TORCHWOOD_SIGNATURE = (
    "td9FxQAAAAAAAAAAkjFvCxC6244QGemHL0hurmk5M3Hj6noQQtBM1TiwnC1lFmT+t+cUG9W0ENlRQtV20lJFLKCz"
    "oJ08ulQEkfiVueKHeMyURh97Iup0R9d41Monv472jkyfDoX3ILyX/kEOuSV4Ed2tU4VmtDSbP0rofMWAbKJRMnzC"
    "pNIT5xMe3tRbWLVTvAtnX9OB4UMKL1dvGS/uuhqW9Ddjik2D8veitBvk3TbQcT8fanSyZqCbDZ5zzw5JS3Gu5oD1"
    "zK7z+KiyqbzKUhglESs7YXFbeU0E03FrXdAPYS6GAuZtBWTJp4DEm4rL+NqU6Xp0n2ehhqd1rFAJUAcsE5CFakQd"
    "lmKkkzVMy3VZYll5ptS0amlYfGqX6/N9bJAYdAoWWpdgCep5eXCutQcTQXc69UocKT99/vholeAP1097GfS+hNL2"
    "ndNS2ieMnj8XLD1LCHVoBjKZUIObB0lx3leGRe9VjYgTRAY2WlE+K32b6Iz1rKzzDD8YBNQdkHgdx44uPOU3I+8s"
    "zYS6NzQ2Z0QlqAtz0j9vZu9yEUUxCEORAiMAHLtV5oWZ/RvSE7qq5B0b8WrHGPGoR/qUNK4ECmlIe/SRo6M7yRrP"
    "s3das3ox1bkC3f92c98ewHLeQtLwwsqQJny6rlYaiaiPMxgdT2CVcJEcKOfaK8pdy2fucBDxHrQitpGkeLJLmWk6"
    "LLxR/Ut6s6xNyyKSuZlVslS40n9MJ837uMmJFyecKPliwAj8HzTWQywSkMpEQfJyr4i2Kfa2paOZ4izmotRTfdvb"
    "FWlWFwuGLWOQ0X/pKaExpdNDwqahAwbfGkw/iHbsV7ZIlNIuSNs2ccQvnjM8xqkT6sYYVxYiHpmk5sOwGsdeiMdw"
    "Qqn7Q/Lz+uc3F6k/r0Ox7MJTX6fPhFdhe8RJg/77USR/MIGiT4YZHV+XgrtbV0jvMEgB4yEOircsScaBmLv18tTn"
    "1GiGlzFjK/s7gOzjk70jf1qCZ1MNgDAPstd/5sXdwYON0FnA5zPUp9yMkq1/wZq+DuePQDT6nj8zgFrkrvl8s7ni"
    "bKKaL2bKcje5YP3CFcXLZoESZnC3BJkV85VqXlAKl+dctM3vNfMVrqk3/boBARw27mdKLsysIREkWR4caByW0csj"
    "L3Js9tn1hB0yf6hIGo8mvPIUjPIXn1rFSSKWkQlq15wu2gwEo9FdVF5beMdF4LVwuO9PZ1Y4oXuRE2pIzMWq/jEz"
    "HAZ7GucP7yzU78X767ucrwO/AXjMlLUsLLFZaQcHHBsrQJLpy5w1Jn/L7XFyR2g0lBOdT+lSOhx7j33oIlzxmqdR"
    "47ovtkg+LJpbAJG7n/JiQ/h/xffe3VdqSsrB8S4ltKz+rq51swoZ59zmRzWaoNkyWX0eu0E7y6EfpfrKEmr0H+fY"
    "tVnJvCznWFKzbv7oDXKC0pOyKZsNctvFwhSGEEURCs1G+4IrAEWG2Y231thQ8HdMvaMcm+ocvBGhZjmE7bXFkdiJ"
    "7S09csFjljFDGCiGRiU+flxkyiqpa1DDgeFRWOEyNAdMeY2iQMTJU9ApqNVrPpjGbg7kL0HrfKCQM236d16DKfXI"
    "iUmZw/NONKnrliAIs6/WSzKdW/JUyTLiKfPV1ItODmw5eNz7lV36dR8g3us/bpWp4OaDIInrLxYZRfkLHLvXGGg5"
    "ogY2k/FMno/3UBbS0QfstK+ByB/pFVYCHWgDjctwpOHaqAAXAiWHAUh1KOpXBMv8qndpzhsYhvKbrL371aBST0e3"
    "iPW/K4x+kFfgdeClsftS9RnE8KDCf4Uz+9QMP9sxj4+ZACztE19eBVaSvCqv54wO6n5248UzbqPXzA1dweKQziw/"
    "FnPWC7qMrcs3jDi6PBPhpruk1xBy08MQg58l4YzuXrPm5gAyiUAyfNszvhTotaU02oljhvg24CycDo/2PvQY7sBm"
    "isIsVVeHssiRxg23CMgWHaPMDn6OM+IhF2xaAqJOjfnsFBWlvMg8LxsrBnOQ1YABVLLtMvCSaIvgBjPt8XtLn9gZ"
    "0HL9OvGsR3efWHTR5p4nZyuHH2Nm8F3nWKVkEI4p4H6Yo5O0hkzCi1ZB7QT3uEIeR0Hq3g/bLTzmm6XzsjWSmQ8C"
    "tPapmXX476QT44wU0CWJ096SqUGUq2ZCDg3kFkV0BuKPIfLCt4sYK9bjj8UZCqkhyHbVm2x+HQwk8mNnDbUd7PK8"
    "9riPjA33KX0Sw32RE0uKtB0sC8m7t028aEupsRx56/M0jBgeYmEHuRrXpW9nuOkQPTBaHdmYBHNkzTF2arPzZK3d"
    "iFuhKPvmSQh2CN6g8r0p3EN+dmps1fIUfHM6emkEuaod+ZG83vyJsyd5B2oPMTVP12z8VJtDRAYfA5bRj+HEw2aD"
    "4f23u/Zq3PHk2C9T5LTAu28WCuO/EpXGSIkq1/hRpyE0qhJSnPN9/iE74PoU1OgjGBv6uSUsNhNZJeMe2W23s8EA"
    "yStB5+u83IBgUctrGwXzNdoC9LY1p+kNFSAZXIggNB3alVzoS+D9rcCYTUAafpkdwLaYq5/w0wRchljkG61rl+gZ"
    "CiwtqZv3SHVxO7kRTAzfHsGDB1yc/9Sz++IMGyFHYvuqtclhpHPPToFByaVl687b1P4t2i/U4fWPZ4BBhN5Q7HGT"
    "xubspw1GY2MjBYU5OXvEJu9aWeibkM/fg6QrxPRYNsJBNJQRywMjYHj6AefrZeGXGxSNgS50kCNBvV7XTli/17y3"
    "MFgR4WfNmBK3BqKb87v3DBMVnLHcqvw1ZVjFPv91q0XYaDdVFHqOnS4Fh5nfwh1qfuvKrUZlwFPcwW+pG4YDyjx9"
    "0MTFugpQ6KfEusmUhB5Dqr79nYWbOhW3e0PCEZtxmVrH9EtCHEgO6wnkWjPke6XULARu0ECF1gZvQczEjKfzxCt6"
    "Rknz+27lXyzgzRyHWxr0kB/pFty+8IebrDfIW9757d+1QLonDTmkLQiirF0ygsgQALmk1KljcHD/qiAZPHh5YX+Q"
    "2VdDfIfGeMXmCg3nX5r5DINcx47fNHtgWeGn8MjF8Hnff6x+ZU/7YqcBrDOvGqn46FBvuRY0+mWkRo576207vQR/"
    "023owl7pXZ5p/75V5yDkTZWDtXsfKjpypcxrWIBsg5GC25nZdjQQGBtFUF1pfn+xvunq9AEIFidYY2Vyc3mYw8TW"
    "7PkVKis5PENhdbfJHDtIdIiQsLe+1Nr+/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA4eKDU="
)


def test_it_verifies_an_ml_dsa_44_signature_made_by_torchwood():
    key = cosigning.parse_witness_key(TORCHWOOD_VKEY)
    parsed = cosigning.parse_cosignature(f"\u2014 example.com/mldsa-log {TORCHWOOD_SIGNATURE}")
    assert (key.kind, parsed.timestamp) == (cosigning.MLDSA44, 0)
    assert key.verifies(TORCHWOOD_NOTE_BODY, parsed)
    assert not key.verifies(TORCHWOOD_NOTE_BODY.replace("\n1\n", "\n2\n"), parsed)


@pytest.mark.django_db
def test_it_keeps_and_verifies_an_ml_dsa_44_cosignature(settings, tmp_path):
    with running(settings, tmp_path, mldsa=True) as pq:
        grow(5)
        assert cosign_due().done == 1
    kept = Cosignature.objects.get()
    assert (kept.witness, bytes(kept.key_id)) == ("witness.test/pq", pq.key_id)
    report = verify_ledger(workers=1)
    assert report.intact, report.problems
    assert report.anchors[5]["cosignatures"].startswith("witness.test/pq at ")
