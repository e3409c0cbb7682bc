"""Joining the transcript's pieces a piece at a time (exports/pdf_join.py), without the database:
pieces rendered and stamped by the renderer's own jobs (exports/pdf_render.py), then joined."""

import hashlib
import json
import os
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pypdf import PdfReader
from pypdf.generic import Destination

from exports import pdf_join, pdf_render

PIECES = 3  # distinct pieces rendered; longer files repeat them
PAGES = 2  # pages in each piece
CREATED = datetime(2026, 12, 5, 9, 30, tzinfo=UTC)


def _html(body: str) -> str:
    head = "<head><style>@page { size: A4 }</style></head>"
    return f'<html lang="en">{head}<body>{body}</body></html>'


@pytest.fixture(scope="module")
def pieces(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """PIECES stamped pieces of PAGES pages, and a manifest beside them."""
    work = tmp_path_factory.mktemp("pieces")
    (work / "manifest.json").write_text('{"messages":[]}')
    made = []
    for n in range(PIECES):
        pages = "".join(
            f'<p style="break-before: page">piece {n} page {p} \u0633\u0644\u0627\u0645</p>'
            for p in range(PAGES)
        )
        (work / f"body-{n}.html").write_text(_html(pages))
        pdf_render.body({"html": f"{work}/body-{n}.html", "pdf": f"{work}/body-{n}.pdf"})
        blank = '<div style="break-before: page"></div>' * PAGES
        furniture = "@page { @bottom-center { content: 'stamped ' counter(page) } }"
        (work / f"stamp-{n}.html").write_text(_html(f"<style>{furniture}</style>{blank}"))
        job = {
            "html": f"{work}/stamp-{n}.html",
            "pdf": f"{work}/stamp-{n}.pdf",
            "body": f"{work}/body-{n}.pdf",
            "out": f"{work}/stamped-{n}.pdf",
        }
        assert pdf_render.stamp(job)["pages"] == PAGES
        made.append(job["out"])
    return made


def join(
    pieces: list[str], count: int, out: Path, outlines: list | None = None, manifest: str = ""
) -> PdfReader:
    chosen = [pieces[n % PIECES] for n in range(count)]
    furniture = str(Path(pieces[0]).with_name("stamp-0.pdf"))
    marks = outlines if outlines is not None else [[] for _ in chosen]
    attached = pdf_join.Attachment(
        path=manifest or str(Path(pieces[0]).with_name("manifest.json")),
        name="manifest.json",
        description="every message's seq and leaf hash",
        created=CREATED,
    )
    assert pdf_join.join(chosen, marks, furniture, str(out), attached) == count * PAGES
    return PdfReader(out, strict=True)


def test_it_joins_every_page_in_order_with_its_stamp(pieces: list[str], tmp_path: Path) -> None:
    reader = join(pieces, 5, tmp_path / "joined.pdf")
    texts = [page.extract_text() for page in reader.pages]
    assert len(texts) == 5 * PAGES
    for n, text in enumerate(texts):
        assert f"piece {n // PAGES % PIECES} page {n % PAGES}" in text
        assert f"stamped {n % PAGES + 1}" in text
    # every object is where the cross-reference table says (strict pypdf reads them all)
    for number in range(1, int(reader.trailer["/Size"])):
        reader.get_object(number)
    assert reader.root_object["/Pages"]["/Count"] == 5 * PAGES


def test_it_keeps_the_first_stamps_pdf_a_catalog_and_attaches_the_manifest(
    pieces: list[str], tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_bytes(os.urandom(3 << 20) + b"\n")  # several chunks, incompressible
    reader = join(pieces, 2, tmp_path / "joined.pdf", manifest=str(manifest))
    root = reader.root_object
    assert root["/OutputIntents"][0]["/S"] == "/GTS_PDFA1"
    assert reader.attachments["manifest.json"] == [manifest.read_bytes()]
    (spec,) = [s.get_object() for s in root["/AF"]]
    assert (spec["/UF"], spec["/AFRelationship"]) == ("manifest.json", "/Data")
    embedded = spec["/EF"]["/F"].get_object()
    assert embedded["/Subtype"] == "/application/json"
    params = embedded["/Params"]
    assert params["/Size"] == manifest.stat().st_size
    md5 = hashlib.md5(manifest.read_bytes(), usedforsecurity=False).digest()
    assert params["/CheckSum"].original_bytes == md5  # PDF says MD5 (ISO 32000-1, 7.11.4)
    assert params["/ModDate"] == "D:20261205093000Z"
    assert reader.metadata is not None and reader.metadata.producer.startswith("WeasyPrint")
    xmp = reader.xmp_metadata
    assert xmp is not None and "pdfaid" in xmp.rdf_root.toxml()
    assert (tmp_path / "joined.pdf").read_bytes().startswith(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")


def test_each_font_subset_gets_a_tag_of_its_own(pieces: list[str], tmp_path: Path) -> None:
    reader = join(pieces, 4, tmp_path / "joined.pdf")
    fonts = {
        ref.idnum: ref.get_object()["/BaseFont"]
        for page in reader.pages
        for ref in page["/Resources"]["/Font"].values()
    }
    tags = [str(name).split("+")[0] for name in fonts.values()]
    assert len(fonts) > 4 and len(tags) == len(set(tags))


def test_the_same_pieces_give_the_same_bytes(pieces: list[str], tmp_path: Path) -> None:
    join(pieces, 3, tmp_path / "a.pdf")
    join(pieces, 3, tmp_path / "b.pdf")
    join(pieces, 4, tmp_path / "c.pdf")
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    a, c = PdfReader(tmp_path / "a.pdf"), PdfReader(tmp_path / "c.pdf")
    assert a.trailer["/ID"][0] == a.trailer["/ID"][1] != c.trailer["/ID"][0]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.integers(0, PAGES - 1), max_size=3), min_size=1, max_size=4))
def test_the_outline_points_at_the_pages_it_was_given(
    pieces: list[str], tmp_path: Path, starts: list[list[int]]
) -> None:
    outlines = [[(f"c{n}.{p} \u00e9", p) for p in marks] for n, marks in enumerate(starts)]
    reader = join(pieces, len(starts), tmp_path / "outlined.pdf", outlines)
    wanted = [(label, n * PAGES + p) for n, marks in enumerate(outlines) for label, p in marks]
    items = [item for item in reader.outline if isinstance(item, Destination)]  # no nesting
    assert len(items) == len(reader.outline)
    got = [(item.title, reader.get_destination_page_number(item)) for item in items]
    assert got == wanted
    assert ("/Outlines" in reader.root_object) == bool(wanted)


def test_memory_does_not_grow_with_the_pieces(pieces: list[str], tmp_path: Path) -> None:
    """pypdf's PdfWriter held every page until it wrote: ten times the pieces, ten times the
    memory. Here the peak is one piece's, whatever the count."""

    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            join(pieces, count, tmp_path / f"{count}.pdf")  # the reader opened after is lazy
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(2)  # what the first join sets up once (pypdf's and the codecs' tables)
    few, many = peak(5), peak(50)
    assert PdfReader(tmp_path / "50.pdf").get_num_pages() == 50 * PAGES
    assert many < few * 1.25, json.dumps({"5 pieces": few, "50 pieces": many})


def test_memory_does_not_grow_with_the_manifest(pieces: list[str], tmp_path: Path) -> None:
    """The manifest holds ~0.2 KB per message: 200 MB for a million. WeasyPrint read it whole
    to attach it; here it streams through a megabyte at a time."""
    small = tmp_path / "small.json"
    small.write_text('{"messages":[]}')
    large = tmp_path / "large.json"
    with large.open("w") as out:
        for seq in range(200_000):  # 30 MB of what pdf.Manifest writes
            out.write(json.dumps({"leaf_hash": f"{seq:064x}", "seq": seq, "wamid": "x" * 60}))

    def peak(manifest: Path) -> int:
        tracemalloc.start()
        try:
            join(pieces, 2, tmp_path / f"{manifest.stem}.pdf", manifest=str(manifest))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(small)
    without, with_it = peak(small), peak(large)
    assert large.stat().st_size > 30_000_000
    assert with_it < without + 4 * (1 << 20), json.dumps({"small": without, "large": with_it})
