"""The PDF/A-3b transcript (exports/pdf.py), read back with pypdf.

Text is compared after extraction. pypdf gives right-to-left runs in visual order inside mixed
lines, so Arabic and Hebrew are checked word by word (each word's letters in order, the words
in any order); everything else must come back verbatim. Most tests render in pieces of a few
messages, so that the merge, the stamp and the page numbering across pieces are what is tested.
"""

import hashlib
import io
import json
import multiprocessing
import re
import unicodedata
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pypdf import PdfReader

from exports import pdf, pdf_render
from exports.pdf_render import MediaFetcher
from exports.scope import Scope
from exports.source import Source
from exports.target import DirectoryTarget, zip_target
from tests.exports.conftest import EXPORT_ID, PNG, SAMPLES, XSS, Rich, World

RTL = ("wamid.rich-ar", "wamid.rich-he")


@pytest.fixture(autouse=True)
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf, "RENDER_CHUNK", 5)


def render(source: Source, directory: Path) -> bytes:
    directory.mkdir()
    pdf.write(source, DirectoryTarget(directory))
    return (directory / "transcript.pdf").read_bytes()


@pytest.fixture
def rich_pdf(rich: Rich, make_source: Callable[..., Source], tmp_path: Path) -> bytes:
    return render(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path / "out")


def text_of(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def words(text: str) -> set[str]:
    """The words of a text, without punctuation or the invisible bidi isolates (U+2066-2069)
    that labels put around names: they steer layout and are not drawn."""
    visible = unicodedata.normalize("NFKC", text).translate(dict.fromkeys(range(0x2066, 0x206A)))
    return {w.strip(".,،؟?!()+") for w in visible.split()} - {""}


def fonts_of(page: Any) -> Any:
    return page["/Resources"]["/Font"].values()


def manifest_of(data: bytes) -> bytes:
    (content,) = PdfReader(io.BytesIO(data)).attachments["manifest.json"]
    return content


def test_it_carries_every_text_through_intact(rich_pdf: bytes) -> None:
    text = text_of(rich_pdf)
    for wamid, sample in SAMPLES.items():
        if wamid in RTL:
            assert words(sample) <= words(text), wamid
        else:
            assert sample in text, wamid
    assert "Replying to my question" in text


def test_it_keeps_edited_and_deleted_originals(rich_pdf: bytes) -> None:
    text = text_of(rich_pdf)
    assert "I will wire 10,000 tomorrow" in text
    assert re.search(r"original, 2026-09-21 \S+ UTC: I will wire 10,000 tomorow\n", text)
    assert re.search(r"edited 2026-09-21 \S+ UTC: I will wire 10,000 tomorrow\n", text)
    assert "Deleted by sender at 2026-09-21" in text
    assert "Buy before the announcement" in text


def test_it_shows_replies_reactions_and_delivery_history(rich_pdf: bytes) -> None:
    text = text_of(rich_pdf)
    assert "Reply to the client, 2026-09-21 14:16:40 UTC:" in text
    assert "Reactions: 🙏 (client, 2026-09-21 14:17:20 UTC)" in text
    assert "Delivery (UTC): sent 14:17:11, delivered 14:17:12, read 14:17:13" in text


def test_it_lists_attachments_with_their_sha256_and_shows_images(rich_pdf: bytes) -> None:
    text = text_of(rich_pdf)
    document = hashlib.sha256(b"%PDF-1.4\n% a tiny stand-in document\n").hexdigest()
    assert "../../etc/passwd statement.pdf” · application/pdf · 36 bytes" in text
    assert f"SHA-256 {document}" in text.replace("\n", " ")
    assert f"image/png · 75 bytes · SHA-256 {hashlib.sha256(PNG).hexdigest()}" in text
    images = [i.image for page in PdfReader(io.BytesIO(rich_pdf)).pages for i in page.images]
    assert [i.size for i in images if i is not None].count((1, 1)) == 1  # emoji are images too


def test_it_shows_participants_period_and_the_cover(
    rich: Rich, make_source: Callable[..., Source], rich_pdf: bytes
) -> None:
    text = text_of(rich_pdf)
    assert {"سارة", "العلي", "971501234567", "442079460000", "Demo", "desk"} <= words(text)
    assert "Period: 12 messages, 2026-09-21 14:16:40 UTC to 2026-09-21 14:18:00 UTC" in text
    cover = PdfReader(io.BytesIO(rich_pdf)).pages[0].extract_text()
    label = make_source(Scope.for_conversation(rich.conversation.pk)).scope.label()
    assert words(label) <= words(cover)
    assert "auditor" in cover and "1 conversation, 12 messages" in cover
    manifest = json.loads(manifest_of(rich_pdf))
    assert manifest["checkpoint"]["root"] in cover
    assert manifest["verifier_key"] in cover
    assert manifest["checkpoint"]["note"].split("\n")[2] in cover  # the signed root, base64


def test_it_numbers_every_page_and_names_the_export(rich_pdf: bytes) -> None:
    pages = PdfReader(io.BytesIO(rich_pdf)).pages
    assert len(pages) == 4  # the cover, then 12 messages in pieces of 5
    for n, page in enumerate(pages, start=1):
        assert f"ClientWindow evidence export {EXPORT_ID} page {n} of 4" in page.extract_text()


def test_it_is_pdf_a_3b(rich_pdf: bytes) -> None:
    reader = PdfReader(io.BytesIO(rich_pdf))
    assert rich_pdf.startswith(b"%PDF-1.7\n")
    xmp = reader.xmp_metadata
    assert xmp is not None
    description = xmp.rdf_root.getElementsByTagName("rdf:Description")[0]
    assert description.getAttribute("pdfaid:part") == "3"
    assert description.getAttribute("pdfaid:conformance") == "B"
    root: Any = reader.root_object
    assert root["/OutputIntents"][0]["/S"] == "/GTS_PDFA1"
    (spec,) = [s.get_object() for s in root["/AF"]]
    assert (spec["/UF"], spec["/AFRelationship"]) == ("manifest.json", "/Data")
    assert reader.metadata is not None and reader.metadata.producer == "WeasyPrint 70.0"
    identifier: Any = reader.trailer["/ID"]
    assert len(identifier) == 2
    fonts = {f.idnum: f.get_object()["/BaseFont"] for p in reader.pages for f in fonts_of(p)}
    tags = [name.split("+")[0] for name in fonts.values()]
    assert len(tags) == len(set(tags))  # each subset has a tag of its own


def test_it_embeds_the_manifest_of_every_message(
    rich: Rich, make_source: Callable[..., Source], rich_pdf: bytes
) -> None:
    content = manifest_of(rich_pdf)
    manifest = json.loads(content)
    assert content == json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    rows = [
        r
        for p in make_source(Scope.for_conversation(rich.conversation.pk)).parts()
        for r in p.rows()
    ]
    assert [(m["seq"], m["leaf_hash"], m["wamid"]) for m in manifest["messages"]] == [
        (r.message.entry_id, bytes(r.message.entry.leaf_hash).hex(), r.message.wamid) for r in rows
    ]
    assert manifest["export_id"] == EXPORT_ID
    assert manifest["scope"] == {"conversation": rich.conversation.pk, "kind": "conversation"}
    assert manifest["checkpoint"]["tree_size"] > max(m["seq"] for m in manifest["messages"])


def test_it_writes_hostile_text_as_text(
    world: World, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    data = render(make_source(Scope.for_conversation(world.hostile.pk)), tmp_path / "out")
    text = text_of(data).replace("\n", "")
    assert XSS + " see https://evil.example/x?a=1" in text
    assert f"“{XSS}.pdf”" in text
    reader = PdfReader(io.BytesIO(data))
    for page in reader.pages:  # no links, no actions: only the invisible signature's widget
        assert all(a.get_object()["/FT"] == "/Sig" for a in page.get("/Annots", []))
        assert not any("/A" in a.get_object() for a in page.get("/Annots", []))
    assert not {"/OpenAction", "/AA"} & set(reader.root_object)


def test_it_renders_the_same_source_to_the_same_bytes(
    rich: Rich, make_source: Callable[..., Source], rich_pdf: bytes, tmp_path: Path
) -> None:
    again = render(make_source(Scope.for_conversation(rich.conversation.pk)), tmp_path / "again")
    # The rendered revision, up to its end-of-file marker: the signature after it (its time,
    # its timestamp) differs from one signing to the next (tests/exports/test_pdf_signature.py).
    assert again[: again.index(b"%%EOF")] == rich_pdf[: rich_pdf.index(b"%%EOF")]


def test_it_writes_under_a_prefix_into_a_zip(
    rich: Rich, make_source: Callable[..., Source], tmp_path: Path
) -> None:
    with zip_target(tmp_path / "bundle.zip") as target:
        pdf.write(make_source(Scope.for_conversation(rich.conversation.pk)), target, "pdf/")
    with zipfile.ZipFile(tmp_path / "bundle.zip") as bundle:
        assert bundle.namelist() == ["pdf/transcript.pdf"]
        assert "Buy before the announcement" in text_of(bundle.read("pdf/transcript.pdf"))


def _render_in_a_daemon(work: str, answers: Any) -> None:
    with pdf.Renderers(2) as pool:
        (Path(work) / "a.html").write_text("<p>one</p><p style='break-before: page'>two</p>")
        pool.submit({"op": "body", "html": f"{work}/a.html", "pdf": f"{work}/a.pdf"})
        answers.put(pool.results()[0]["pages"])


def test_it_renders_inside_a_daemonic_process(real_renderers: None, tmp_path: Path) -> None:
    # django-q2 runs jobs in daemonic processes, which multiprocessing forbids to have children
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    daemon = context.Process(target=_render_in_a_daemon, args=(str(tmp_path), answers), daemon=True)
    daemon.start()
    assert answers.get(timeout=60) == 2
    daemon.join(timeout=10)
    assert daemon.exitcode == 0


def test_a_renderer_is_replaced_after_recycle_after_jobs(
    real_renderers: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdf, "RECYCLE_AFTER", 2)
    (tmp_path / "a.html").write_text("<p>one page</p>", encoding="utf-8")
    pids, ended = [], []
    with pdf.Renderers(1) as pool:
        for n in range(5):
            before = pool.procs[0]
            pool.submit({"op": "body", "html": f"{tmp_path}/a.html", "pdf": f"{tmp_path}/{n}.pdf"})
            if pool.procs[0] is not before:
                ended.append(before.returncode)  # it was let finish, not killed
            pids.append(pool.procs[0].pid)
        answers = pool.results()
    assert [answer["pages"] for answer in answers] == [1] * 5
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert ended == [0, 0]


def test_a_renderer_reports_its_own_peak_memory_not_its_parents(
    real_renderers: None, tmp_path: Path
) -> None:
    # Linux starts a child's ru_maxrss at its parent's peak: from a 400 MB parent, a renderer
    # holding 100 MB would say 400.
    ballast = b"x" * (250 << 20)  # touched, so resident
    parent = pdf_render.peak_rss_kb()
    (tmp_path / "a.html").write_text("<p>one page</p>", encoding="utf-8")
    with pdf.Renderers(1) as pool:
        answer = pool.run({"op": "body", "html": f"{tmp_path}/a.html", "pdf": f"{tmp_path}/a.pdf"})
    assert len(ballast) and parent > 250 << 10
    assert 20 << 10 < answer["peak_rss_kb"] < parent - (150 << 10)


def test_it_gives_times_in_utc_and_the_firm_zone(settings: Any) -> None:
    settings.TIME_ZONE = "Europe/Paris"
    evening = datetime(2026, 9, 21, 22, 30, tzinfo=UTC)
    assert pdf.when(evening) == "2026-09-21 22:30:00 UTC (2026-09-22 00:30:00 CEST)"
    assert pdf.when(evening.replace(hour=8)) == "2026-09-21 08:30:00 UTC (10:30:00 CEST)"


def test_it_reads_images_only_from_the_media_directory(tmp_path: Path) -> None:
    fetcher = MediaFetcher(str(tmp_path))
    (tmp_path / ("ab" * 32)).write_bytes(PNG)
    assert fetcher.fetch(f"media:{'ab' * 32}").read() == PNG
    for url in ("https://evil.example/x.png", "file:///etc/passwd", "media:../../etc/passwd"):
        with pytest.raises(ValueError, match="refused"):
            fetcher.fetch(url)


def test_it_fails_the_export_when_a_renderer_fails(real_renderers: None, tmp_path: Path) -> None:
    missing = {"op": "body", "html": f"{tmp_path}/missing.html", "pdf": f"{tmp_path}/x.pdf"}
    pool = pdf.Renderers(1)
    with pytest.raises(RuntimeError, match="FileNotFoundError"), pool:
        pool.run(missing)
    assert all(proc.poll() is not None for proc in pool.procs)


def test_it_leaves_out_images_that_declare_huge_bitmaps(tmp_path: Path) -> None:
    bomb = io.BytesIO()
    Image.new("1", (6000, 5000)).save(bomb, "PNG")  # 30 megapixels in a few kB
    digest = hashlib.sha256(bomb.getvalue()).hexdigest()
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / digest).write_bytes(bomb.getvalue())
    (tmp_path / "a.html").write_text(f'<p>before</p><img src="media:{digest}"><p>after</p>')
    job = {"op": "body", "html": f"{tmp_path}/a.html", "pdf": f"{tmp_path}/a.pdf"}
    with pdf.Renderers(1) as pool:
        pool.run({**job, "media": f"{tmp_path}/media"})
    (page,) = PdfReader(tmp_path / "a.pdf").pages
    assert "after" in page.extract_text()
    assert not page.images
