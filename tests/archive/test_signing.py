"""Signed notes interoperate with Go's golang.org/x/mod/sumdb/note (its published test vector)."""

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from archive import signing
from archive.signing import NoteError

# From note_test.go in golang.org/x/mod/sumdb/note (BSD licence): a key, a text and its note.
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def go_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(GO_SIGNER_SEED)


def test_it_signs_exactly_as_the_go_reference_does():
    assert signing.sign_note(GO_TEXT, "PeterNeumann", go_key()) == GO_NOTE


def test_it_derives_the_go_verifier_key():
    assert signing.verifier_for("PeterNeumann", go_key().public_key()).verifier_key == (
        GO_VERIFIER_KEY
    )


def test_it_opens_the_go_note_with_the_parsed_verifier_key():
    verifier = signing.parse_verifier_key(GO_VERIFIER_KEY)
    assert signing.open_note(GO_NOTE, [verifier]) == GO_TEXT


def test_it_rejects_a_changed_text():
    verifier = signing.parse_verifier_key(GO_VERIFIER_KEY)
    with pytest.raises(NoteError, match="does not verify"):
        signing.open_note(GO_NOTE.replace("cryptography", "cryptographY"), [verifier])


def test_it_rejects_a_note_signed_by_an_unknown_key():
    other = signing.verifier_for("PeterNeumann", Ed25519PrivateKey.generate().public_key())
    with pytest.raises(NoteError, match="no signature by a known key"):
        signing.open_note(GO_NOTE, [other])


@pytest.mark.parametrize(
    "key",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "PeterNeumann+c74f20a3+AhpC2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong algorithm
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a3+!!!",
    ],
)
def test_it_rejects_malformed_verifier_keys(key):
    with pytest.raises(NoteError):
        signing.parse_verifier_key(key)


@given(st.text(min_size=1).map(lambda t: t + "\n"))
def test_it_never_fails_except_with_a_note_error(junk):
    verifier = signing.parse_verifier_key(GO_VERIFIER_KEY)
    with pytest.raises(NoteError):
        signing.open_note(junk, [verifier])


def test_it_writes_private_keys_readable_only_by_their_owner(tmp_path):
    path = tmp_path / "key.pem"
    key = signing.create_private_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert signing.load_private_key(path).public_key() == key.public_key()


def test_it_never_overwrites_a_key(tmp_path):
    path = tmp_path / "key.pem"
    signing.create_private_key(path)
    with pytest.raises(FileExistsError):
        signing.create_private_key(path)
