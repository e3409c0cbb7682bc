"""RFC 3161 timestamps on checkpoints, against a real TSA on loopback (openssl ts -reply behind
scripts/local_tsa.py, tests/tsa.py): tokens that verify (openssl agrees), each way a TSA can
misbehave refused with its reason kept, and verify_ledger catching tampered tokens."""

import subprocess
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from archive import anchoring, ledger, timestamps
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact
from archive.models import AnchorTask, Checkpoint, CheckpointTimestamp
from archive.verify import verify_ledger
from tests.conftest import superuser_connect

Duty = AnchorTask.Duty
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def checkpoint(n: int = 3) -> Checkpoint:
    ledger.append([Fact("test.fact", {"n": i}) for i in range(n)])
    return create_checkpoint()


def run_timestamps() -> anchoring.RunResult:
    return anchoring.run_due(everything=True, duties=[Duty.TIMESTAMP])


def good_token(tsa, note: bytes) -> bytes:
    return timestamps._request(tsa.url, note)


@pytest.mark.django_db
def test_it_timestamps_a_checkpoint_with_a_token_openssl_verifies(tsa, tmp_path):
    signed = checkpoint()
    assert run_timestamps().done == 1
    stamp = CheckpointTimestamp.objects.get(checkpoint=signed)
    assert stamp.tsa_url == tsa.url
    assert signed.created_at - timedelta(seconds=2) <= stamp.gen_time <= stamp.received_at
    assert AnchorTask.objects.filter(checkpoint=signed, duty=Duty.PUBLISH_TIMESTAMP).exists()
    (tmp_path / "note").write_bytes(signed.note.encode())
    (tmp_path / "token").write_bytes(bytes(stamp.token))
    verified = subprocess.run(
        ["openssl", "ts", "-verify", "-data", tmp_path / "note", "-in", tmp_path / "token",
         "-token_in", "-CAfile", tsa.ca_file],
        capture_output=True, text=True,
    )  # fmt: skip
    assert verified.stdout == "Verification: OK\n", verified.stderr


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "garbage: the reply is not an RFC 3161 TimeStampResp"),
        ("wrong-nonce", "wrong nonce: the reply answers another query"),
        (
            "no-eku",
            "the signer's certificate is not for timestamping (no timeStamping extended key usage)",
        ),
        ("expired", "the signer's certificate had expired at genTime"),
        ("untrusted", "the signer does not chain to a root in TSA_CA_FILE (untrusted)"),
        ("down", "HTTP 503"),
        ("slow", "no reply within 1 s (timeout)"),
    ],
)
def test_it_refuses_a_bad_tsa_keeps_the_reason_and_succeeds_later(tsa, settings, mode, reason):
    settings.TSA_TIMEOUT = 1
    tsa.slow_seconds = 2
    signed = checkpoint()
    tsa.mode = mode
    assert run_timestamps().failed == 1
    task = AnchorTask.objects.get(checkpoint=signed, duty=Duty.TIMESTAMP)
    assert task.last_error == f"no timestamp: {tsa.url}: {reason}"
    assert not CheckpointTimestamp.objects.exists()
    tsa.mode = "ok"
    assert run_timestamps().done == 1
    assert CheckpointTimestamp.objects.filter(checkpoint=signed).count() == 1


@pytest.mark.django_db
def test_a_tsa_that_is_down_never_blocks_checkpointing(tsa):
    tsa.mode = "down"
    assert checkpoint().tree_size == 3
    assert checkpoint(2).tree_size == 5
    assert run_timestamps().failed == 2
    assert not CheckpointTimestamp.objects.exists()


@pytest.mark.django_db
def test_it_falls_back_to_the_next_tsa(tsa, settings):
    settings.TSA_URLS = ["http://127.0.0.1:9/", tsa.url]
    signed = checkpoint()
    assert run_timestamps().done == 1
    assert CheckpointTimestamp.objects.get(checkpoint=signed).tsa_url == tsa.url


@pytest.mark.django_db
def test_a_newer_checkpoint_waits_for_an_older_ones_timestamp(tsa):
    tsa.mode = "down"
    older = checkpoint()
    assert run_timestamps().failed == 1
    tsa.mode = "ok"
    newer = checkpoint(2)
    with pytest.raises(anchoring.AnchorFailure, match="waits for checkpoint 3's timestamp"):
        timestamps.obtain(newer)
    assert run_timestamps().done == 2  # tree order: the older first
    assert older.timestamps.get().gen_time <= newer.timestamps.get().gen_time


@pytest.mark.django_db
def test_it_does_nothing_the_second_time(tsa):
    signed = checkpoint()
    first = timestamps.obtain(signed)
    assert timestamps.obtain(signed) == first
    assert tsa.requests >= 1 and signed.timestamps.count() == 1


@pytest.mark.django_db
def test_it_refuses_a_token_before_the_checkpoint_was_signed(tsa, settings):
    settings.TSA_TOLERANCE_SECONDS = 0
    roots = timestamps.load_roots(tsa.ca_file)
    token = good_token(tsa, b"note\n")
    with pytest.raises(timestamps.TokenRefused, match="is before the checkpoint was signed"):
        timestamps.check_token(token, b"note\n", roots, datetime.now(UTC) + timedelta(hours=1))


@pytest.mark.django_db
def test_the_ledger_report_names_each_checkpoints_timestamp(tsa):
    signed = checkpoint()
    run_timestamps()
    checkpoint(2)
    report = verify_ledger()
    stamp = signed.timestamps.get()
    assert report.intact, report.problems
    assert report.anchors[3]["timestamp"] == (f"{stamp.gen_time:%Y-%m-%dT%H:%M:%SZ} by {tsa.url}")
    assert report.anchors[5]["timestamp"] == "none"


@pytest.mark.django_db
def test_tokens_cannot_be_checked_without_roots(tsa, settings):
    checkpoint()
    run_timestamps()
    settings.TSA_CA_FILE = ""
    report = verify_ledger()
    assert [str(p) for p in report.problems] == [
        "ledger: timestamp tokens cannot be checked: TSA_CA_FILE is not set"
    ]
    assert report.anchors[3]["timestamp"].endswith("(not checked: no TSA_CA_FILE)")


# --- an attacker with the database ---------------------------------------------------------


def tamper(sql: str, params: list) -> None:
    with superuser_connect() as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, params)


def problems() -> list[str]:
    return [str(p) for p in verify_ledger().problems]


@pytest.fixture
def stamped(committed, tsa):
    """Two checkpoints (3 and 5), each timestamped by the loopback TSA, committed."""
    checkpoint()
    run_timestamps()
    checkpoint(2)
    run_timestamps()
    return tsa


def test_verify_catches_a_flipped_byte_in_a_token(stamped):
    token = bytearray(CheckpointTimestamp.objects.get(checkpoint_id=3).token)
    token[-40] ^= 0x01  # inside the signature
    tamper("UPDATE archive_checkpointtimestamp SET token = %s WHERE tree_size = 3", [bytes(token)])
    assert problems() == [
        f"checkpoint 3: timestamp token from {stamped.url} does not verify:"
        " the signature does not verify (Error while verifying certificates)"
    ]


def test_verify_catches_a_token_for_another_note(stamped):
    other = good_token(stamped, b"another note\n")
    tamper("UPDATE archive_checkpointtimestamp SET token = %s WHERE tree_size = 3", [other])
    assert problems() == [
        f"checkpoint 3: timestamp token from {stamped.url} does not verify:"
        " imprint differs from the note's SHA-256"
    ]


def test_verify_catches_an_older_tree_timestamped_after_a_newer_one(stamped):
    """What rewriting an old checkpoint and timestamping it again would leave behind."""
    first = CheckpointTimestamp.objects.get(checkpoint_id=5).gen_time
    while datetime.now(UTC).replace(microsecond=0) <= first:  # openssl's genTime: seconds
        time.sleep(0.05)
    note = Checkpoint.objects.get(tree_size=3).note.encode()
    token = good_token(stamped, note)
    later = timestamps.check_token(token, note, timestamps.load_roots(stamped.ca_file), EPOCH)
    tamper(
        "UPDATE archive_checkpointtimestamp SET token = %s, gen_time = %s WHERE tree_size = 3",
        [token, later],
    )
    found = problems()
    assert len(found) == 1
    assert found[0].startswith("checkpoint 5: timestamped at ")
    assert "earlier than checkpoint 3" in found[0]


# --- every input -----------------------------------------------------------------------------


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_are_refused_with_a_reason_never_a_crash(data):
    with pytest.raises(timestamps.TokenRefused):
        timestamps.check_token(data, b"note\n", [], EPOCH)
    with pytest.raises(timestamps.TokenRefused, match="garbage"):
        timestamps._granted_token(data)


def test_system_checks_name_missing_roots_and_missing_tsas(settings, tmp_path):
    settings.TSA_URLS = ["http://127.0.0.1:9/"]
    settings.TSA_CA_FILE = str(tmp_path / "missing.pem")
    assert [m.id for m in timestamps.check_tsa_roots()] == ["archive.E004"]
    (tmp_path / "not.pem").write_text("not a certificate")
    settings.TSA_CA_FILE = str(tmp_path / "not.pem")
    assert "holds no PEM certificates" in timestamps.check_tsa_roots()[0].msg
    settings.TSA_URLS = []
    assert timestamps.check_tsa_roots() == []
    assert [m.id for m in timestamps.check_tsa_configured()] == ["archive.W005"]
