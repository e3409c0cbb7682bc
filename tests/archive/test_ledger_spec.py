"""docs/LEDGER.md is precise enough: a verifier written from it alone (independent_verifier.py)
accepts a ledger built by the project's own code and finds tampering at the right place.

The project's code is used only as a black box to produce data (append, checkpoints, the
published verifier key and PEM); the verifier itself imports nothing from `archive`.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import dj_database_url
import psycopg
import pytest
import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.core.management import call_command

from archive.checkpoints import verifier_key_text
from tests.archive import independent_verifier as iv
from tests.archive.conftest import SIZE
from tests.conftest import TEST_DB, superuser_connect


def audit() -> list[str]:
    with superuser_connect() as conn:
        return iv.verify(conn, [verifier_key_text()])


def naming(problems: list[str], prefix: str) -> list[str]:
    return [p for p in problems if p.startswith(prefix)]


# --- the Merkle tree hash of the verifier itself --------------------------------------------


def test_the_frontier_root_is_the_literal_rfc6962_definition() -> None:
    rng = random.Random(6962)
    leaves = [iv.leaf_hash(rng.randbytes(8)) for _ in range(70)]
    frontier = iv.Frontier()
    assert frontier.root() == iv.mth([]) == iv.sha256(b"")
    for n, leaf in enumerate(leaves, start=1):
        frontier.append(leaf)
        assert frontier.root() == iv.mth(leaves[:n]), n


def test_the_mth_matches_rfc6962_reference_roots() -> None:
    """The 8-leaf tree of RFC 6962's reference tests (certificate-transparency's merkle_test)."""
    data = [
        b"",
        b"\x00",
        b"\x10",
        b"\x20\x21",
        b"\x30\x31",
        b"\x40\x41\x42\x43",
        b"\x50\x51\x52\x53\x54\x55\x56\x57",
        b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
    ]
    leaves = [iv.leaf_hash(d) for d in data]
    assert iv.mth(leaves).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )
    assert iv.mth(leaves[:1]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )


# --- the project's ledger, intact and tampered ----------------------------------------------


def test_it_finds_the_projects_ledger_intact(archive: None) -> None:
    assert audit() == []


def unrelated_key() -> str:
    """A well-formed verifier key with the deployment's key name that signed nothing."""
    other = Ed25519PublicKey.from_public_bytes(bytes(range(32)))
    raw = other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = verifier_key_text().split("+")[0]
    encoded = base64.b64encode(b"\x01" + raw).decode()
    return f"{name}+{iv.key_id(name, raw).hex()}+{encoded}"


def test_it_reads_in_any_time_zone_and_transaction_mode(archive: None) -> None:
    """A non-UTC session and a non-autocommit connection; a previous key published too."""
    with superuser_connect() as conn:
        conn.autocommit = False
        conn.execute("SET TimeZone = 'Asia/Kathmandu'")
        conn.commit()
        assert iv.verify(conn, [unrelated_key(), verifier_key_text()]) == []


def test_it_needs_the_published_key(archive: None) -> None:
    with superuser_connect() as conn:
        problems = iv.verify(conn, [unrelated_key()])
    assert [p.split(":")[0] for p in problems] == [
        "checkpoint 100",
        "checkpoint 300",
        "checkpoint 600",
    ]


def test_it_finds_a_changed_envelope_byte(attacker: psycopg.Connection) -> None:
    attacker.execute(
        "UPDATE archive_ledgerentry SET envelope = overlay(envelope placing 'X' from 3) "
        "WHERE seq = 42"
    )
    problems = audit()
    assert any("leaf_hash" in p for p in naming(problems, "seq 42:")), problems
    assert not naming(problems, "seq 43:")


def test_it_finds_a_changed_link(attacker: psycopg.Connection) -> None:
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 42")
    problems = audit()
    assert problems[0] == "seq 42: link does not extend the chain", problems


def test_it_finds_a_consistently_rehashed_envelope(attacker: psycopg.Connection) -> None:
    envelope = b'{"forged":true}'
    attacker.execute(
        "UPDATE archive_ledgerentry SET envelope = %s, leaf_hash = %s WHERE seq = 42",
        [envelope, iv.leaf_hash(envelope)],
    )
    problems = audit()
    assert "seq 42: link does not extend the chain" in problems
    assert "seq 42: envelope v is None, row says 1" in problems
    assert naming(problems, "checkpoint 100:") and not naming(problems, "seq 41:")


def test_it_finds_a_changed_checkpoint_note(attacker: psycopg.Connection) -> None:
    attacker.execute(
        "UPDATE archive_checkpoint SET note = replace(note, 'time 20', 'time 19') "
        "WHERE tree_size = 300"
    )
    problems = audit()
    assert any("does not verify" in p for p in naming(problems, "checkpoint 300:")), problems
    assert not naming(problems, "checkpoint 100:") + naming(problems, "checkpoint 600:")


def test_it_finds_a_changed_checkpoint_root(attacker: psycopg.Connection) -> None:
    attacker.execute("UPDATE archive_checkpoint SET root = sha256(root) WHERE tree_size = 300")
    problems = audit()
    assert problems == [
        "checkpoint 300: root does not match the recomputed Merkle tree hash",
        next(p for p in problems if p.startswith("checkpoint 300: note states size 300")),
    ]


def test_it_finds_changed_content(attacker: psycopg.Connection) -> None:
    attacker.execute(
        "UPDATE archive_content SET content = 'message 999' WHERE seq = 10 AND name = 'body'"
    )
    assert audit() == ["seq 10: content 'body' does not match its commitment"]


def test_it_accepts_disposed_content(attacker: psycopg.Connection) -> None:
    attacker.execute("DELETE FROM archive_content WHERE seq < 50")
    assert audit() == []


def test_it_finds_a_deleted_entry(attacker: psycopg.Connection) -> None:
    attacker.execute("DELETE FROM archive_content WHERE seq = 42")
    attacker.execute("DELETE FROM archive_ledgerentry WHERE seq = 42")
    problems = audit()
    assert problems[0] == "seq 42: missing (next row has seq 43)", problems
    assert naming(problems, "checkpoint 100: root does not match")


def test_it_finds_a_truncated_ledger(attacker: psycopg.Connection) -> None:
    attacker.execute("TRUNCATE archive_ledgerentry, archive_content CASCADE")
    problems = audit()
    assert "checkpoint 100: beyond the last entry (ledger holds 0)" in problems


def test_an_entry_appended_behind_the_head_shows_only_in_the_chainhead(
    attacker: psycopg.Connection,
) -> None:
    """Built from §2 alone: the forged entry is well-formed, so only the §1 cache disagrees."""
    sealed = dt.datetime.now(dt.UTC).replace(microsecond=123456)
    envelope = rfc8785.dumps(
        {"v": 1, "seq": SIZE, "kind": "test.message", "sealed_at": iv.utc_text(sealed)}
    )
    row = attacker.execute(
        "SELECT link FROM archive_ledgerentry WHERE seq = %s", [SIZE - 1]
    ).fetchone()
    assert row is not None
    leaf = iv.leaf_hash(envelope)
    attacker.execute(
        "INSERT INTO archive_ledgerentry VALUES (%s, 'test.message', %s, %s, %s, %s)",
        [SIZE, envelope, leaf, iv.chain_link(row[0], leaf), sealed],
    )
    problems = audit()
    assert problems == [f"chainhead: does not agree with the ledger's end (size {SIZE + 1})"]
    with superuser_connect() as conn:
        assert iv.verify(conn, [verifier_key_text()], helpers=False) == []


# --- §5's OpenSSL recipe, followed literally ------------------------------------------------


def published_pem() -> bytes:
    """The PEM SubjectPublicKeyInfo from `manage.py export_public_key` (§5: published)."""
    out = io.StringIO()
    call_command("export_public_key", stdout=out)
    text = out.getvalue()
    start = text.index("-----BEGIN PUBLIC KEY-----")
    end = text.index("-----END PUBLIC KEY-----") + len("-----END PUBLIC KEY-----")
    return (text[start:end] + "\n").encode()


def test_openssl_verifies_a_checkpoint_as_documented(archive: None, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    with superuser_connect() as conn:
        row = conn.execute("SELECT note FROM archive_checkpoint WHERE tree_size = 300").fetchone()
    assert row is not None
    text, signature_lines = row[0].split("\n\n", 1)
    signature_b64 = signature_lines.splitlines()[0].rsplit(" ", 1)[1]
    (tmp_path / "text").write_bytes((text + "\n").encode("utf-8"))
    (tmp_path / "sig").write_bytes(base64.b64decode(signature_b64)[4:])
    pem = published_pem()
    key = iv.parse_verifier_key(verifier_key_text()).public
    assert pem == key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "pub.pem").write_bytes(pem)
    command = [
        "openssl",
        "pkeyutl",
        "-verify",
        "-pubin",
        "-inkey",
        "pub.pem",
        "-rawin",
        "-in",
        "text",
        "-sigfile",
        "sig",
    ]
    ok = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (tmp_path / "text").write_bytes((text.replace("time 20", "time 19") + "\n").encode())
    bad = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode != 0


# --- the auditor's command line -------------------------------------------------------------


def auditor_command_line() -> list[str]:
    conf = dj_database_url.parse(os.environ["DATABASE_SUPERUSER_URL"])
    dsn = psycopg.conninfo.make_conninfo(
        host=conf["HOST"],
        port=conf["PORT"] or None,
        user=conf["USER"],
        password=conf["PASSWORD"] or None,
        dbname=TEST_DB,
    )
    return [sys.executable, iv.__file__, dsn, verifier_key_text()]


def test_the_command_line_exits_0_then_1_naming_the_seq(attacker: psycopg.Connection) -> None:
    intact = subprocess.run(auditor_command_line(), capture_output=True, text=True, check=False)
    assert (intact.returncode, intact.stdout) == (0, "intact\n"), intact.stderr
    attacker.execute("UPDATE archive_ledgerentry SET link = sha256(link) WHERE seq = 7")
    bad = subprocess.run(auditor_command_line(), capture_output=True, text=True, check=False)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == "seq 7: link does not extend the chain"
