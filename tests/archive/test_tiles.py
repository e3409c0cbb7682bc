"""The read API monitors follow (/ledger/): tiles checked by an independent client, access modes,
what is refused and why, and that nothing but hashes and notes ever leaves."""

import itertools

import pytest
from django.conf import settings as django_settings
from django.db import transaction
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from archive import checkpoints, ledger
from archive.checkpoints import create_checkpoint
from archive.ledger import Fact
from archive.models import ChainHead, Checkpoint, LedgerEntry
from archive.tiles import Tile, TilePathError, check_api_access, parse_tile_path
from tests.archive import tiles_client
from tests.archive.tiles_client import ClientError, Fetch

pytestmark = pytest.mark.django_db
PREFIX = "/ledger/"
IMMUTABLE = "public, max-age=31536000, immutable"


@pytest.fixture(autouse=True)
def public(settings) -> None:
    settings.LEDGER_API_ACCESS = "public"


def grow(to: int, *, checkpoint: bool = True, body: bool = False) -> None:
    """Append entries up to `to` (in large COPY batches), then sign a checkpoint."""
    size = ChainHead.objects.get().size
    facts = [
        Fact("test.message", {"n": n}, {"body": f"secret body {n}".encode()} if body else {})
        for n in range(size, to)
    ]
    for start in range(0, len(facts), 5000):
        ledger.append(facts[start : start + 5000])
    if checkpoint:
        create_checkpoint()


def fetcher(client: Client) -> Fetch:
    def fetch(path: str) -> bytes:
        response = client.get(PREFIX + path)
        if response.status_code != 200:
            raise ClientError(f"{path}: {response.status_code} {response.content[:200]!r}")
        return response.content

    return fetch


def follow(client: Client) -> tiles_client.Checkpoint:
    key = checkpoints.verifier_key_text()
    return tiles_client.follow(fetcher(client), key, django_settings.LEDGER_ORIGIN)


def get(path: str, client: Client | None = None, **headers: str):
    return (client or Client()).get(PREFIX + path, headers=headers)


# --------------------------------------------------------------------------- the tree


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 512, 513])
def test_it_serves_the_tiles_that_give_the_checkpoints_root(client, size):
    grow(size)
    assert follow(client).size == size


@given(st.lists(st.integers(1, 1100), min_size=2, max_size=4, unique=True).map(sorted))
@example([255, 256])
@example([256, 257])
@example([1, 1024])
@hypothesis_settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_it_proves_each_checkpoint_extends_the_one_before_from_tiles_alone(client, sizes):
    with transaction.atomic():  # every example starts from an empty ledger
        seen = []
        for size in sizes:
            grow(size)
            seen.append(follow(client))
        for old, new in itertools.pairwise(seen):
            tiles_client.check_consistency(fetcher(client), old, new)
        transaction.set_rollback(True)


def test_it_serves_level_1_and_2_tiles_past_65536_entries(client):
    grow(300)
    old = follow(client)
    grow(65536 + 300)
    new = follow(client)
    tiles_client.check_consistency(fetcher(client), old, new)
    assert len(get("tile/1/000").content) == 256 * 32  # each hash the root of a level-0 tile
    assert len(get("tile/1/001.p/1").content) == 32
    assert len(get("tile/2/000.p/1").content) == 32


def test_it_refuses_a_tile_whose_hashes_do_not_match_the_level_above(client):
    grow(600)
    tree = tiles_client.TileTree(fetcher(client), 600)
    tree.tiles[1, 0] = [bytes(32), tree.hash(1, 1)]  # as if the level-1 tile lied
    with pytest.raises(ClientError, match="does not hash to its entry one level up"):
        tree.hash(0, 0)


# --------------------------------------------------------------------------- what is served


@pytest.fixture
def three_checkpoints() -> None:
    for size in (100, 300, 600):
        grow(size, body=True)


@pytest.mark.parametrize(
    ("path", "hashes"),
    [
        ("tile/0/000", 256),
        ("tile/0/001", 256),
        ("tile/0/000.p/100", 100),  # checkpoint 100
        ("tile/0/001.p/44", 44),  # checkpoint 300
        ("tile/1/000.p/1", 1),  # checkpoint 300
        ("tile/0/002.p/88", 88),  # checkpoint 600
        ("tile/1/000.p/2", 2),  # checkpoint 600
    ],
)
def test_it_serves_full_tiles_and_partial_widths_of_checkpoints(three_checkpoints, path, hashes):
    response = get(path)
    assert response.status_code == 200
    assert len(response.content) == hashes * 32
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"] == IMMUTABLE


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/000.p/50",  # no checkpoint of size 50
        "tile/0/001.p/45",  # 301 is not a checkpoint
        "tile/0/002",  # 768 entries: past the latest checkpoint
        "tile/0/003.p/1",
        "tile/1/000",  # 65536 entries
        "tile/2/000.p/1",
        "tile/63/x999/x999/x999/x999/x999/x999/999",
        "tile/entries/000",  # entry bundles are never served
        "tile/entries/000.p/100",
    ],
)
def test_it_answers_404_for_tiles_no_checkpoint_covers(three_checkpoints, path):
    response = get(path)
    assert response.status_code == 404
    assert response["Cache-Control"] == "no-cache"


def test_it_serves_no_tile_for_entries_after_the_latest_checkpoint(three_checkpoints):
    grow(900, checkpoint=False)
    assert get("tile/0/002").status_code == 404
    assert get("tile/0/003.p/132").status_code == 404


def test_it_serves_partial_tiles_that_begin_their_full_tile(three_checkpoints):
    full = get("tile/0/000").content
    assert get("tile/0/000.p/100").content == full[: 100 * 32]


def test_it_serves_the_stored_leaf_hashes_as_level_0(three_checkpoints):
    stored = LedgerEntry.objects.filter(seq__gte=256, seq__lt=300).values_list("leaf_hash")
    assert get("tile/0/001.p/44").content == b"".join(bytes(h) for (h,) in stored)


@pytest.mark.parametrize(("path", "queries"), [("tile/0/001", 2), ("tile/1/000.p/2", 3)])
def test_it_reads_a_tile_in_at_most_three_queries(
    three_checkpoints, django_assert_num_queries, path, queries
):
    with django_assert_num_queries(queries):  # latest size, [the width's checkpoint], one range
        assert get(path).status_code == 200


def test_it_never_sends_an_envelope_or_content(three_checkpoints):
    paths = ["", "checkpoint", "tile/0/000", "tile/0/001", "tile/0/002.p/88", "tile/1/000.p/2"]
    paths += ["tile/0/000.p/100", "tile/0/001.p/44", "tile/1/000.p/1", "tile/entries/000"]
    sent = b"".join(get(path).content for path in paths)
    for entry in LedgerEntry.objects.all():
        assert bytes(entry.envelope) not in sent
        assert f"secret body {entry.seq}".encode() not in sent
    assert b"secret body" not in sent


def test_it_answers_503_when_entries_a_checkpoint_covers_are_gone(three_checkpoints):
    # A checkpoint past the ledger's end: what removing signed entries leaves behind.
    Checkpoint.objects.create(tree_size=900, root=bytes(32), note="", created_at=timezone.now())
    response = get("tile/0/002")
    assert response.status_code == 503
    assert b"holds 88 of the 256 hashes" in response.content


# --------------------------------------------------------------------------- malformed paths


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("tile/00/000", b"the level must be a number from 0 to 63"),
        ("tile/64/000", b"the level must be a number from 0 to 63"),
        ("tile/-1/000", b"the level must be a number from 0 to 63"),
        ("tile/0/000.p/0", b"a partial width must be a number from 1 to 255"),
        ("tile/0/000.p/256", b"a partial width must be a number from 1 to 255"),
        ("tile/0/000.p/010", b"a partial width must be a number from 1 to 255"),
        ("tile/0/00", b"groups of three digits"),
        ("tile/0/1234", b"groups of three digits"),
        ("tile/0/001/002", b"canonical way: tile/0/x001/002"),
        ("tile/0/x001", b"canonical way: tile/0/001"),
        ("tile/0/x000/001", b"canonical way: tile/0/001"),
        ("tile/0/000/", b"groups of three digits"),
        ("tile/0/000.p", b"groups of three digits"),
    ],
)
def test_it_answers_400_naming_what_is_wrong_with_a_path(three_checkpoints, path, reason):
    response = get(path)
    assert response.status_code == 400
    assert reason in response.content
    assert response["Content-Type"] == "text/plain; charset=utf-8"


@given(st.integers(0, 63), st.integers(0, 2**64), st.integers(1, 256))
def test_it_reads_back_every_tile_path_it_writes(level, index, width):
    tile = Tile(level, index, width)
    assert parse_tile_path(tile.path) == tile
    assert "tile/" + tile.path == tiles_client.tile_path(level, index, width)


@given(st.text(alphabet="0123456789xp./-", max_size=40) | st.text(max_size=40))
def test_it_parses_any_path_or_names_why_not(path):
    try:
        tile = parse_tile_path(path)
    except TilePathError:
        return
    assert tile.path == path


@given(st.text(alphabet="0123456789xp./", min_size=1, max_size=30))
@hypothesis_settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_it_answers_any_tile_path_without_a_5xx(client, path):
    assert get("tile/" + path, client).status_code in (200, 400, 404)


# --------------------------------------------------------------------------- the checkpoint


def test_it_serves_the_latest_checkpoint_note(three_checkpoints):
    response = get("checkpoint")
    assert response.content.decode() == Checkpoint.objects.get(tree_size=600).note
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"


def test_it_serves_the_checkpoint_with_its_cosignatures(witness):
    from archive import anchoring
    from archive.models import AnchorTask

    grow(300)
    anchoring.run_due(everything=True, duties=[AnchorTask.Duty.COSIGN])
    latest = Checkpoint.objects.get(tree_size=300)
    line = latest.cosignatures.get().line
    note = get("checkpoint").content.decode()
    assert note == latest.note + line
    assert follow(Client()).size == 300  # the client still reads it: the log's signature holds


def test_it_answers_404_before_the_first_checkpoint():
    assert get("checkpoint").status_code == 404
    assert get("tile/0/000.p/1").status_code == 404


def test_it_names_origin_verifier_key_and_endpoints():
    text = get("").content.decode()
    assert f"origin: {django_settings.LEDGER_ORIGIN}\n" in text
    assert f"verifier key: {checkpoints.verifier_key_text()}\n" in text
    assert "checkpoint: http://testserver/ledger/checkpoint\n" in text


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", ["", "checkpoint", "tile/0/000", "tile/00/000", "tile/entries/0"])
@pytest.mark.parametrize("method", ["get", "head", "post", "delete"])
def test_it_is_absent_when_off(settings, three_checkpoints, path, method):
    settings.LEDGER_API_ACCESS = "off"
    assert getattr(Client(), method)(PREFIX + path).status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
def test_it_only_reads(three_checkpoints, method):
    response = getattr(Client(), method)(PREFIX + "tile/0/000")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_it_answers_head_like_get(three_checkpoints):
    response = Client().head(PREFIX + "tile/0/000")
    assert (response.status_code, response["Content-Length"]) == (200, str(256 * 32))


@pytest.fixture
def tokens(settings) -> None:
    settings.LEDGER_API_ACCESS = "token"
    settings.LEDGER_API_TOKENS = ["first-token", "second-token"]


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer wrong",
        "Basic second-token",
        "second-token",
        "Bearer second-token-and-more",
        "Bearer sécond",
    ],
)
def test_it_wants_a_good_token_in_token_mode(tokens, three_checkpoints, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("", "checkpoint", "tile/0/000", "tile/00/000"):
        response = get(path, **headers)
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("token", ["first-token", "second-token"])
def test_it_serves_any_configured_token(tokens, three_checkpoints, token):
    response = get("tile/0/000", Authorization=f"Bearer {token}")
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


def test_it_lets_a_token_client_follow_the_ledger(tokens, three_checkpoints):
    client = Client(headers={"Authorization": "Bearer first-token"})
    assert follow(client).size == 600


def test_it_sets_no_cookie_even_for_a_signed_in_user(three_checkpoints, auditor):
    signed_in = Client()
    signed_in.force_login(auditor)
    for client in (Client(), signed_in):
        for path in ("", "checkpoint", "tile/0/000", "tile/9/000", "tile/00"):
            response = get(path, client)
            assert not response.cookies


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("access", "tokens", "errors"),
    [
        ("off", [], 0),
        ("public", [], 0),
        ("token", ["t"], 0),
        ("token", [], 1),
        ("Public", [], 1),
        ("", [], 1),
    ],
)
def test_it_checks_the_access_setting(settings, access, tokens, errors):
    settings.LEDGER_API_ACCESS = access
    settings.LEDGER_API_TOKENS = tokens
    found = check_api_access()
    assert [e.id for e in found] == ["archive.E007"] * errors


def test_it_stays_closed_with_an_unknown_access_setting(settings, three_checkpoints):
    settings.LEDGER_API_ACCESS = "yes"
    assert get("checkpoint").status_code == 404
