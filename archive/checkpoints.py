"""Signed checkpoints: the RFC 6962 root over the ledger, signed as a C2SP tlog-checkpoint note.

The body is `<origin>\\n<tree size>\\n<base64 root>\\ntime <RFC 3339 UTC>\\n`, signed with the
Ed25519 key in LEDGER_SIGNING_KEY_FILE (outside the database). A checkpoint costs O(log n): the
root comes from the Merkle frontier that appenders keep in the chain head.
"""

import base64
import functools

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone

from archive import anchoring, signing
from archive.ledger import rfc3339
from archive.merkle import CompactRange
from archive.models import Checkpoint


@functools.cache
def signing_key() -> Ed25519PrivateKey:
    path = settings.LEDGER_SIGNING_KEY_FILE
    if not path.exists() and settings.LEDGER_SIGNING_KEY_AUTOCREATE:
        try:
            return signing.create_private_key(path)
        except FileExistsError:  # another local process created it first
            pass
    return signing.load_private_key(path)


def key_name() -> str:
    return str(settings.LEDGER_ORIGIN)


def current_verifier() -> signing.Verifier:
    return signing.verifier_for(key_name(), signing_key().public_key())


def verifiers() -> list[signing.Verifier]:
    """The current key and every retired one still trusted for old checkpoints."""
    previous = [signing.parse_verifier_key(k) for k in settings.LEDGER_PREVIOUS_VERIFIER_KEYS]
    return [current_verifier(), *previous]


def verifier_key_text() -> str:
    return current_verifier().verifier_key


def public_key_pem() -> str:
    return signing.public_key_pem(signing_key().public_key())


def checkpoint_body(origin: str, tree_size: int, root: bytes, when: str) -> str:
    return f"{origin}\n{tree_size}\n{base64.b64encode(root).decode()}\ntime {when}\n"


def parse_checkpoint_body(text: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root) from a checkpoint body; ValueError when malformed."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[1].isdigit():
        raise ValueError("not a checkpoint body")
    root = base64.b64decode(lines[2], validate=True)
    if len(root) != 32:
        raise ValueError("root is not 32 bytes")
    return lines[0], int(lines[1]), root


def create_checkpoint(*, using: str = DEFAULT_DB_ALIAS) -> Checkpoint | None:
    """Sign the current tree; None when the ledger is empty or already checkpointed at its size."""
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute("SELECT size, frontier FROM archive_chainhead WHERE id = 1")
        size, frontier = cursor.fetchone()
        if size == 0 or Checkpoint.objects.using(using).filter(tree_size=size).exists():
            return None
        root = CompactRange.from_bytes(size, bytes(frontier)).root()
        now = timezone.now()
        body = checkpoint_body(key_name(), size, root, rfc3339(now))
        note = signing.sign_note(body, key_name(), signing_key())
        try:
            with transaction.atomic(using=using):
                checkpoint = Checkpoint.objects.using(using).create(
                    tree_size=size, root=root, note=note, created_at=now
                )
        except IntegrityError:  # a concurrent run signed the same size first
            return None
        anchoring.plan(checkpoint, using=using)  # timestamp, publish, cosign: by the worker
        return checkpoint
