"""The ledger's Merkle tree as C2SP tlog-tiles, the read API monitors follow (hashes only).

A tile at level L, index N holds up to 256 consecutive hashes of the tree at height 8L: level 0
is the leaf hashes (`archive_ledgerentry.leaf_hash`), level L ≥ 1 the stored nodes of level 8L
(`archive_merklenode`). Either way a tile is one range scan of at most 256 rows.

What is served is decided by the signed checkpoints, not by the entries:

* a full tile once the latest checkpoint covers all of it;
* a partial tile `.p/W` only for a width some checkpoint's tree size gives it (the spec's
  `floor(size / 256**L) mod 256`), since a client fetches partial tiles only for a checkpoint it
  has verified. Widths of sizes between checkpoints, and anything past the latest checkpoint
  (entries no signature covers yet), are not served.

Entry bundles (`tile/entries/…`) are never served: the API publishes hashes, nothing else.
"""

import hmac
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.db import DEFAULT_DB_ALIAS

from archive.models import Checkpoint, LedgerEntry, MerkleNode

TILE_HEIGHT = 8  # levels of the tree per tile level; the tlog-tiles spec fixes it
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_LEVEL = 63
ACCESS_MODES = ("off", "public", "token")

LEVEL_RE = re.compile(r"0|[1-9][0-9]?")
WIDTH_RE = re.compile(r"[1-9][0-9]{0,2}")
GROUP_RE = re.compile(r"x?[0-9]{3}")


class TilePathError(ValueError):
    """A tile path the spec does not allow; the message says why, for a 400."""


class TileUnavailable(LookupError):
    """A well-formed tile the ledger does not serve (yet); the message says why, for a 404."""


class TileMissing(LookupError):
    """A tile a checkpoint covers whose rows are not all there: the archive is damaged."""


@dataclass(frozen=True)
class Tile:
    """Tile `index` of tile level `level`: `width` hashes of the tree at height 8 * level."""

    level: int
    index: int
    width: int  # TILE_WIDTH for a full tile

    @property
    def partial(self) -> bool:
        return self.width < TILE_WIDTH

    @property
    def path(self) -> str:
        """The canonical path below `tile/`, e.g. `0/x001/x234/067.p/8`."""
        digits = f"{self.index:03d}"
        digits = "0" * (-len(digits) % 3) + digits
        groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
        encoded = "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])
        suffix = f".p/{self.width}" if self.partial else ""
        return f"{self.level}/{encoded}{suffix}"


def parse_tile_path(path: str) -> Tile:
    """The tile named by `path` (what follows `tile/`); TilePathError naming the fault."""
    level_text, _, rest = path.partition("/")
    if not LEVEL_RE.fullmatch(level_text) or int(level_text) > MAX_LEVEL:
        raise TilePathError("the level must be a number from 0 to 63, no leading zeros")
    parts = rest.split("/")
    width = TILE_WIDTH
    if len(parts) >= 2 and parts[-2].endswith(".p"):
        if not WIDTH_RE.fullmatch(parts[-1]) or int(parts[-1]) >= TILE_WIDTH:
            raise TilePathError("a partial width must be a number from 1 to 255, no leading zeros")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2].removesuffix(".p")]
    if not all(GROUP_RE.fullmatch(p) for p in parts):
        raise TilePathError("the index must be groups of three digits, all but the last after an x")
    tile = Tile(int(level_text), int("".join(p.removeprefix("x") for p in parts)), width)
    if tile.path != path:
        raise TilePathError(f"the index is not written the canonical way: tile/{tile.path}")
    return tile


def latest_checkpoint(*, using: str = DEFAULT_DB_ALIAS) -> Checkpoint | None:
    """The checkpoint of the largest tree size, the one `/ledger/checkpoint` serves."""
    return Checkpoint.objects.using(using).order_by("-tree_size").first()


def read_tile(tile: Tile, *, using: str = DEFAULT_DB_ALIAS) -> bytes:
    """The tile's hashes concatenated (32 bytes each), if a checkpoint says it may be served."""
    latest = Checkpoint.objects.using(using).order_by("-tree_size")
    size = latest.values_list("tree_size", flat=True).first() or 0
    span = TILE_WIDTH**tile.level  # leaves under each hash of the tile
    first = tile.index * TILE_WIDTH  # the tile's first hash, counted along its tree level
    end = first + tile.width
    if end * span > size:
        raise TileUnavailable(f"the latest checkpoint (tree size {size}) does not cover this tile")
    if tile.partial and not _checkpoint_gives_width(first + tile.width, span, size, using):
        raise TileUnavailable("no checkpoint's tree size ends in a partial tile of this width")
    hashes = [bytes(h) for h in _rows(tile.level, first, end, using)]
    if len(hashes) != tile.width:
        raise TileMissing(f"the ledger holds {len(hashes)} of the {tile.width} hashes of this tile")
    return b"".join(hashes)


def _checkpoint_gives_width(hashes: int, span: int, size: int, using: str) -> bool:
    """Some checkpoint's size s has floor(s / span) == hashes: its partial tile has this width."""
    sizes = Checkpoint.objects.using(using).filter(
        tree_size__gte=hashes * span, tree_size__lte=min((hashes + 1) * span - 1, size)
    )
    return sizes.exists()


def _rows(level: int, first: int, end: int, using: str) -> Any:
    if level == 0:
        entries = LedgerEntry.objects.using(using).filter(seq__gte=first, seq__lt=end)
        return entries.order_by("seq").values_list("leaf_hash", flat=True)
    height = level * TILE_HEIGHT  # ledger.append stores every node of height 8 and more
    nodes = MerkleNode.objects.using(using).filter(level=height, index__gte=first, index__lt=end)
    return nodes.order_by("index").values_list("hash", flat=True)


# --------------------------------------------------------------------------- access


def token_accepted(authorization: str) -> bool:
    """`Bearer <token>` with one of LEDGER_API_TOKENS, each compared in constant time."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    offered = given.strip().encode()
    matches = [hmac.compare_digest(offered, t.encode()) for t in settings.LEDGER_API_TOKENS]
    return any(matches)


@register("archive")
def check_api_access(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    access = settings.LEDGER_API_ACCESS
    if access in ACCESS_MODES and not (access == "token" and not settings.LEDGER_API_TOKENS):
        return []
    problem = (
        "LEDGER_API_ACCESS is token but LEDGER_API_TOKENS is empty: nobody could read the API."
        if access == "token"
        else f"LEDGER_API_ACCESS is {access!r}; it must be off, public or token."
    )
    return [
        Error(
            problem,
            hint="Set LEDGER_API_ACCESS to off, public or token, and with token give "
            "LEDGER_API_TOKENS (comma-separated).",
            id="archive.E007",
        )
    ]
