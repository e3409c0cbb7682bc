"""The PDF renderer process behind exports/pdf.py: WeasyPrint and pypdf, no Django, no database.

exports/pdf.py starts it as `python -m exports.pdf_render`, one per core. A plain subprocess
works inside django-q2's workers, which are daemonic processes that multiprocessing refuses to
give children. Each renderer reads one JSON job per line on stdin and answers one JSON line on
stdout (with its peak memory and the job's time):

- `body`: an HTML file of messages to a PDF file of A4 pages without page furniture; answers
  its page count and the conversations that start in it (for the outline).
- `stamp`: the furniture of a body's pages (the export id and "page x of y" in @page margin
  boxes, on blank pages), laid over them. The first piece's stamp is kept: the joined file
  takes its PDF/A-3b metadata from it.
- `join`: the stamped pieces, one after the other, as one PDF/A-3b file with an outline and
  manifest.json attached (exports/pdf_join.py: a piece at a time, and the manifest a megabyte
  at a time, so memory does not grow with the transcript).

Only files named by their SHA-256 in the job's media directory are ever read for images:
nothing is fetched from the network or elsewhere on disk.
"""

import json
import os
import re
import resource
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import weasyprint
import weasyprint.draw.text
from PIL import Image
from pypdf import PdfReader, PdfWriter
from weasyprint.images import RasterImage
from weasyprint.urls import URLFetcher, URLFetcherResponse

from exports import pdf_join

VARIANT = "pdf/a-3b"
MEDIA_URL = re.compile(r"media:([0-9a-f]{64})")

Job = dict[str, Any]


class MediaFetcher(URLFetcher):  # type: ignore[misc]  # WeasyPrint is untyped
    """Serves `media:<sha256>` from one directory and refuses every other URL."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self.directory = Path(directory)

    def fetch(self, url: str, headers: object = None) -> URLFetcherResponse:
        match = MEDIA_URL.fullmatch(url)
        if not match:
            raise ValueError(f"refused to fetch {url[:80]!r}")
        return URLFetcherResponse(url, (self.directory / match.group(1)).read_bytes())


def _html(job: Job) -> Any:
    text = Path(job["html"]).read_text(encoding="utf-8")
    return weasyprint.HTML(string=text, url_fetcher=MediaFetcher(job.get("media") or os.devnull))


def body(job: Job) -> Job:
    document = _html(job).render()
    document.write_pdf(job["pdf"], pdf_variant=VARIANT)
    # Level-1 bookmarks: one per conversation that starts in this piece.
    marks = [[label, target[0]] for label, target, _, _ in document.make_bookmark_tree()]
    return {"pages": len(document.pages), "outline": marks}


def stamp(job: Job) -> Job:
    _html(job).write_pdf(job["pdf"], pdf_variant=VARIANT)
    furniture, writer = PdfReader(job["pdf"]), PdfWriter()
    pages = PdfReader(job["body"]).pages
    if len(pages) != len(furniture.pages):
        raise ValueError(f"{len(pages)} pages of messages, {len(furniture.pages)} stamped")
    for page, over in zip(pages, furniture.pages, strict=True):
        added = writer.add_page(page)
        added.merge_page(over)
        added.compress_content_streams()  # merging decompressed the page's content
    writer.write(job["out"])
    return {"pages": len(pages)}


def join(job: Job) -> Job:
    manifest = pdf_join.Attachment(
        path=job["manifest"],
        name="manifest.json",
        description="Ledger seq and leaf hash of every message, and the checkpoint",
        created=datetime.fromisoformat(job["created"]),
    )
    pages = pdf_join.join(job["pieces"], job["outlines"], job["furniture"], job["out"], manifest)
    return {"pages": pages}


_EMOJI: dict[str, Any] = {}


def _emoji_image(pillow: Any, image_id: str, data: bytes, *args: Any, **kwargs: Any) -> Any:
    """One image per emoji glyph. WeasyPrint makes a new one at every occurrence, re-encoding
    the glyph's bitmap each time (~1.7 ms: 4 s in an emoji-rich 1,000-message transcript)."""
    if image_id not in _EMOJI:
        _EMOJI[image_id] = RasterImage(pillow, image_id, data, *args, **kwargs)
    return _EMOJI[image_id]


# The colour-emoji drawing code is the only user of RasterImage in that module.
weasyprint.draw.text.RasterImage = _emoji_image

JOBS: dict[str, Callable[[Job], Job]] = {"body": body, "stamp": stamp, "join": join}


def peak_rss_kb() -> int:
    """This process's own peak resident memory (VmHWM). Not ru_maxrss: Linux starts a child's
    at the resident memory of the process that started it, here the export's (130 MB and more),
    so a renderer's ru_maxrss said 187 MB while it held 115."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:  # not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmHWM:")


def serve(jobs: TextIO, answers: TextIO) -> None:
    for line in jobs:
        job = json.loads(line)
        started, cpu = time.perf_counter(), time.process_time()
        try:
            answer = JOBS[job["op"]](job)
        except Exception as problem:  # reported to the parent, which fails the export
            answer = {"error": f"{type(problem).__name__}: {problem}"[:500]}
        answer["peak_rss_kb"] = peak_rss_kb()
        answer["seconds"] = time.perf_counter() - started
        answer["cpu_seconds"] = time.process_time() - cpu
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def main() -> None:
    # fontTools stamps the fonts it rewrites (WeasyPrint's emoji subsets) with the time unless
    # told a fixed one: 1980-01-01, the time exports/target.py gives ZIP members.
    os.environ["SOURCE_DATE_EPOCH"] = "315532800"
    # Client images are hostile too: a small file can declare an enormous bitmap. Past 25
    # megapixels (WhatsApp sends at most ~13) Pillow refuses it, and the page shows the file's
    # facts without the picture.
    Image.MAX_IMAGE_PIXELS = 25_000_000
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    # The protocol owns stdout; anything a library prints goes to stderr instead.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    serve(sys.stdin, answers)


if __name__ == "__main__":
    main()
