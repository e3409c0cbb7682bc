"""Join the transcript's stamped pieces into one PDF file, a piece at a time.

pypdf's PdfWriter keeps every object of the joined file until it writes it (the join used it
until 5 December 2026: its memory grew with the transcript, ~16 GB for a million messages by
the PDF benchmark's figures). Here each piece is read, its objects renumbered and written out,
and the piece let go before the next is opened, so memory is one piece (a few MB) plus eight
bytes per object for the cross-reference table and an entry per piece in the page tree. The
file written is what pypdf wrote, in the same PDF 1.7 syntax:

- a catalog with the first stamp's PDF/A-3b parts (XMP metadata, the sRGB output intent, the
  language) and its document information;
- the attached file (manifest.json) as associated data (/AF, /EmbeddedFiles), read and
  deflated a megabyte at a time;
- a page tree of one node per piece under the root, every page keeping the attributes it
  inherited in its piece;
- an outline of one item per conversation start;
- every font subset retagged with a tag of its own (WeasyPrint tags a subset after its font,
  not its glyphs, so each piece brings different subsets under the same name, which PDF
  forbids: ISO 32000-1, 9.6.4);
- a classic cross-reference table, and a file identifier derived from the pieces' bytes, so
  the same pieces give the same file.

No Django here: it runs in the renderer process (exports/pdf_render.py).
"""

import gc
import hashlib
import io
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pypdf import PdfReader
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NullObject,
    NumberObject,
    PdfObject,
    StreamObject,
    TextStringObject,
)

HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"
# What the first stamp lends the joined file: XMP metadata (pdfaid), the sRGB output intent
# and the document's language.
CATALOG_KEYS = ("/Metadata", "/OutputIntents", "/Lang")
INHERITED = ("/Resources", "/MediaBox", "/CropBox", "/Rotate")  # ISO 32000-1, 7.7.3.4
CATALOG, PAGES = 1, 2  # the numbers every joined file gives these
_BUFFER = 1 << 20

Outline = Iterable[tuple[str, int]]  # (label, page number within its piece, from 0)


@dataclass(frozen=True)
class Attachment:
    """A file embedded in the joined PDF as associated data (PDF/A-3, ISO 19005-3 6.8)."""

    path: str
    name: str
    description: str
    created: datetime
    media_type: str = "application/json"


def join(
    pieces: list[str],
    outlines: list[Outline],
    furniture: str,
    out: str,
    attachment: Attachment | None = None,
) -> int:
    """Write `out`: the PDFs `pieces` one after the other, with `outlines[i]` pointing into
    `pieces[i]`, the PDF/A catalog and information of `furniture`, and `attachment` embedded.
    Returns the page count."""
    with Path(out).open("wb", buffering=_BUFFER) as stream:
        writer, tags, digest = _Writer(stream), _Tags(), hashlib.sha256()
        marks = _Marks(writer)
        kids, pages = [], 0
        for path, outline in zip(pieces, outlines, strict=True):
            data = Path(path).read_bytes()  # what PdfReader(path) would read: hashed as well
            digest.update(data)
            node, numbers = _piece(writer, PdfReader(io.BytesIO(data)), tags)
            kids.append(node)
            for label, page in outline:
                marks.add(label, numbers[page])
            pages += len(numbers)
            gc.collect()  # the piece's objects refer to their reader and back: let them go now
        marks.close()
        writer.write(PAGES, _pages(kids, pages))
        attached = (attachment.name, _embed(writer, attachment)) if attachment else None
        _catalog(writer, PdfReader(furniture), outline=marks.root, attached=attached)
        # PDF/A requires a file identifier: derived from the content, so the same pieces give
        # the same bytes.
        writer.finish(digest.digest()[:16])
    return pages


def _embed(writer: "_Writer", attachment: Attachment) -> int:
    """Write the attachment's embedded file stream, read once and deflated a megabyte at a
    time, and its file specification; returns the specification's number. Its length and its
    parameters (size, MD5) are known only once the file has been read, so they are objects of
    their own written after it. WeasyPrint read an attached file whole (35 MB of peak memory
    for a 32 MB manifest; ~0.2 KB per message)."""
    read = _Deflating(attachment.path)
    length, params, stream = writer.new(), writer.new(), writer.new()
    head = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/EmbeddedFile"),
            NameObject("/Subtype"): NameObject("/" + attachment.media_type),
            NameObject("/Params"): _Fixed(params),
            NameObject("/Filter"): NameObject("/FlateDecode"),
            NameObject("/Length"): _Fixed(length),
        }
    )
    writer.write(length, NumberObject(writer.write_stream(stream, head, read.chunks())))
    moment = TextStringObject(attachment.created.astimezone(UTC).strftime("D:%Y%m%d%H%M%SZ"))
    facts = {
        "/CheckSum": ByteStringObject(read.md5.digest()),
        "/Size": NumberObject(read.size),
        "/CreationDate": moment,
        "/ModDate": moment,
    }
    writer.write(params, DictionaryObject({NameObject(k): v for k, v in facts.items()}))
    spec = writer.new()
    writer.write(
        spec,
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Filespec"),
                NameObject("/F"): TextStringObject(attachment.name),
                NameObject("/UF"): TextStringObject(attachment.name),
                NameObject("/EF"): DictionaryObject({NameObject("/F"): _Fixed(stream)}),
                NameObject("/Desc"): TextStringObject(attachment.description),
                NameObject("/AFRelationship"): NameObject("/Data"),
            }
        ),
    )
    return spec


class _Deflating:
    """A file deflated as it is read (`chunks`), its size and MD5 (/CheckSum, ISO 32000-1
    7.11.4) counted on the way."""

    def __init__(self, path: str) -> None:
        self.path, self.size = path, 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def chunks(self) -> Iterator[bytes]:
        squeeze = zlib.compressobj()
        with Path(self.path).open("rb") as source:
            while chunk := source.read(_BUFFER):
                self.md5.update(chunk)
                self.size += len(chunk)
                yield squeeze.compress(chunk)
        yield squeeze.flush()


def _catalog(
    writer: "_Writer", furniture: PdfReader, outline: int, attached: tuple[str, int] | None
) -> None:
    """The catalog and document information, with the first stamp's PDF/A parts and the
    attachment's name and file specification (`attached`, when there is one)."""
    root = furniture.root_object
    catalog = DictionaryObject({NameObject("/Type"): NameObject("/Catalog")})
    catalog[NameObject("/Pages")] = _Fixed(PAGES)
    if outline:
        catalog[NameObject("/Outlines")] = _Fixed(outline)
    for key in CATALOG_KEYS:
        if key in root:
            catalog[NameObject(key)] = root.raw_get(key)
    if attached:
        name, spec = attached
        names = {NameObject("/Names"): ArrayObject([TextStringObject(name), _Fixed(spec)])}
        files = DictionaryObject({NameObject("/EmbeddedFiles"): DictionaryObject(names)})
        catalog[NameObject("/Names")] = files
        catalog[NameObject("/AF")] = ArrayObject([_Fixed(spec)])
    copier = _Copier(writer, furniture)
    copier.reach(catalog)
    # /Info must say what the XMP says (PDF/A): WeasyPrint's producer and dates, kept as written.
    writer.info = copier.number(furniture.trailer.raw_get("/Info").idnum)  # pydyf's is indirect
    writer.write(CATALOG, catalog, copier.numbers.__getitem__)
    copier.drain()


def _pages(kids: list[int], count: int, parent: int = 0) -> DictionaryObject:
    node = DictionaryObject({NameObject("/Type"): NameObject("/Pages")})
    if parent:
        node[NameObject("/Parent")] = _Fixed(parent)
    node[NameObject("/Kids")] = ArrayObject(_Fixed(n) for n in kids)
    node[NameObject("/Count")] = NumberObject(count)
    return node


class _Fixed(PdfObject):
    """A reference to an object of the joined file, by its number there."""

    def __init__(self, number: int) -> None:
        self.number = number

    def write_to_stream(self, stream: Any, encryption_key: Any = None) -> None:
        stream.write(b"%d 0 R" % self.number)


class _Writer:
    """Objects out as they come, each at the number it was given; the cross-reference table
    (eight bytes an object) at the end."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.offsets = array("Q", [0, 0, 0])  # object 0 is free; 1 and 2 are reserved above
        self.info = 0
        stream.write(HEADER)

    def new(self) -> int:
        self.offsets.append(0)
        return len(self.offsets) - 1

    def write(self, number: int, obj: PdfObject, renumber: Callable[[int], int] = int) -> None:
        self.offsets[number] = self.stream.tell()
        self.stream.write(b"%d 0 obj\n" % number)
        _serialize(obj, self.stream, renumber)
        self.stream.write(b"\nendobj\n")

    def write_stream(self, number: int, head: DictionaryObject, data: Iterable[bytes]) -> int:
        """A stream object whose data comes in chunks; returns its length."""
        self.offsets[number] = self.stream.tell()
        self.stream.write(b"%d 0 obj\n" % number)
        _dictionary(head, self.stream, int)
        self.stream.write(b"\nstream\n")
        length = 0
        for chunk in data:
            self.stream.write(chunk)
            length += len(chunk)
        self.stream.write(b"\nendstream\nendobj\n")
        return length

    def finish(self, identifier: bytes) -> None:
        missing = [n for n, at in enumerate(self.offsets) if n and not at]
        if missing:
            raise ValueError(f"objects {missing[:5]} were numbered but never written")
        out, start = self.stream, self.stream.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % len(self.offsets))
        for at in self.offsets[1:]:
            out.write(b"%010d 00000 n \n" % at)
        hexid = identifier.hex().encode()
        out.write(
            b"trailer\n<<\n/Size %d\n/Root %d 0 R\n/Info %d 0 R\n/ID [ <%s> <%s> ]\n>>\n"
            % (len(self.offsets), CATALOG, self.info, hexid, hexid)
        )
        out.write(b"startxref\n%d\n%%%%EOF\n" % start)


def _serialize(obj: PdfObject, out: IO[bytes], renumber: Callable[[int], int]) -> None:
    """Write `obj` as pypdf would, with every reference renumbered."""
    if isinstance(obj, IndirectObject):
        out.write(b"%d 0 R" % renumber(obj.idnum))
    elif isinstance(obj, StreamObject):
        _dictionary(obj, out, renumber)  # its /Length set by the copier
        out.write(b"\nstream\n")
        out.write(obj._data)  # the stream's bytes as stored, still encoded
        out.write(b"\nendstream")
    elif isinstance(obj, DictionaryObject):
        _dictionary(obj, out, renumber)
    elif isinstance(obj, ArrayObject):
        out.write(b"[")
        for item in obj:
            out.write(b" ")
            _serialize(item, out, renumber)
        out.write(b" ]")
    else:
        obj.write_to_stream(out)


def _dictionary(obj: DictionaryObject, out: IO[bytes], renumber: Callable[[int], int]) -> None:
    out.write(b"<<\n")
    for key, value in obj.items():
        key.write_to_stream(out)
        out.write(b" ")
        _serialize(value, out, renumber)
        out.write(b"\n")
    out.write(b">>")


class _Copier:
    """Copies the objects reachable from what it is shown out of one reader, each once, under
    new numbers; `drain` writes those reached and not yet written."""

    def __init__(self, writer: _Writer, reader: PdfReader, tags: "_Tags | None" = None) -> None:
        self.writer, self.reader, self.tags = writer, reader, tags
        self.numbers: dict[int, int] = {}
        self.pending: deque[int] = deque()

    def number(self, old: int) -> int:
        if old not in self.numbers:
            self.numbers[old] = self.writer.new()
            self.pending.append(old)
        return self.numbers[old]

    def reach(self, obj: PdfObject) -> None:
        """Number every object `obj` refers to directly."""
        if isinstance(obj, IndirectObject):
            self.number(obj.idnum)
        elif isinstance(obj, DictionaryObject):
            for item in obj.values():
                self.reach(item)
        elif isinstance(obj, ArrayObject):
            for item in obj:
                self.reach(item)

    def drain(self) -> None:
        while self.pending:
            old = self.pending.popleft()
            obj = self.reader.get_object(old)
            if obj is None:  # a dangling reference reads as null (ISO 32000-1, 7.3.10)
                obj = NullObject()
            if self.tags is not None and isinstance(obj, DictionaryObject):
                self.tags.retag(obj)
            if isinstance(obj, StreamObject):  # direct, so an indirect length is not copied
                obj[NameObject("/Length")] = NumberObject(len(obj._data))
            self.reach(obj)
            self.writer.write(self.numbers[old], obj, self.numbers.__getitem__)


def _piece(writer: _Writer, reader: PdfReader, tags: "_Tags") -> tuple[int, list[int]]:
    """Copy one piece's pages under a page tree node of their own, written after them; returns
    the node's number and each page's."""
    copier = _Copier(writer, reader, tags)
    node = writer.new()
    numbers = []
    for page in reader.pages:  # numbered first: anything of the piece may point at a page
        number = copier.numbers[page.indirect_reference.idnum] = writer.new()  # type: ignore[union-attr]
        numbers.append(number)
    for page, number in zip(reader.pages, numbers, strict=True):
        copied = DictionaryObject({k: v for k, v in page.items() if k != "/Parent"})
        for key in INHERITED:
            if key not in copied and page.get_inherited(key) is not None:
                copied[NameObject(key)] = page.get_inherited(key)
        copied[NameObject("/Parent")] = _Fixed(node)
        copier.reach(copied)
        writer.write(number, copied, copier.numbers.__getitem__)
        copier.drain()
    writer.write(node, _pages(numbers, len(numbers), parent=PAGES))
    return node, numbers


class _Tags:
    """Six-letter subset tags, AAAAAA, BAAAAA, … one per font in the joined file."""

    def __init__(self) -> None:
        self.given = 0

    def retag(self, obj: DictionaryObject) -> None:
        if obj.get("/Type") != "/Font" or "/Subtype" not in obj:
            return
        n = self.given
        tag = "".join(chr(65 + n // 26**i % 26) for i in range(6))
        self.given += 1
        named = [obj, *(d.get_object() for d in obj.get("/DescendantFonts", ()))]
        named += [f["/FontDescriptor"].get_object() for f in list(named) if "/FontDescriptor" in f]
        for font in named:
            for key in ("/BaseFont", "/FontName"):
                name = str(font.get(key, ""))
                if "+" in name:
                    font[NameObject(key)] = NameObject(f"/{tag}+{name.split('+', 1)[1]}")


class _Marks:
    """The outline: one item per conversation start, written as the next one is known."""

    def __init__(self, writer: _Writer) -> None:
        self.writer = writer
        self.root = self.count = self.first = 0
        self.held: tuple[int, str, int, int] | None = None  # (number, label, page, previous)

    def add(self, label: str, page: int) -> None:
        if not self.root:
            self.root = self.writer.new()
        number = self.writer.new()
        if self.held is None:
            self.first = number
        else:
            self._write(*self.held, following=number)
        self.held = (number, label, page, self.held[0] if self.held else 0)
        self.count += 1

    def close(self) -> None:
        if self.held is None:
            return
        self._write(*self.held, following=0)
        self.writer.write(
            self.root,
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Outlines"),
                    NameObject("/First"): _Fixed(self.first),
                    NameObject("/Last"): _Fixed(self.held[0]),
                    NameObject("/Count"): NumberObject(self.count),
                }
            ),
        )

    def _write(self, number: int, label: str, page: int, previous: int, following: int) -> None:
        item = DictionaryObject(
            {
                NameObject("/Title"): TextStringObject(label),
                NameObject("/Parent"): _Fixed(self.root),
                NameObject("/Dest"): ArrayObject([_Fixed(page), NameObject("/Fit")]),
            }
        )
        if previous:
            item[NameObject("/Prev")] = _Fixed(previous)
        if following:
            item[NameObject("/Next")] = _Fixed(following)
        self.writer.write(number, item)
