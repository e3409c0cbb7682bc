"""Witness cosignatures (C2SP tlog-witness). (Being written: helper W owns this file.)"""

from django.db import DEFAULT_DB_ALIAS

from archive.anchoring import AnchorFailure
from archive.models import Checkpoint


def cosign(checkpoint: Checkpoint, target: str) -> None:
    raise AnchorFailure("witnesses are not written yet")


def verify_cosignatures(report: object, stored: list, *, using: str = DEFAULT_DB_ALIAS) -> None:
    return None
