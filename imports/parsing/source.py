"""An uploaded export opened safely: a bare .txt or a zip holding the chat text and its media.

The zip is untrusted input. Member names are checked before anything is read (no traversal,
absolute or drive names), sizes are capped from the declared sizes and again while reading
(a member cannot expand past what it declared, 200:1 or the total cap), and the chat text is
streamed line by line with a bounded buffer, so a hostile file costs at most a few MiB of memory.
"""

import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Self

from imports.parsing import vocabulary

MAX_LINE_CHARS = 1024 * 1024
MAX_MEMBERS = 100_000
EXPANDED_CAP = 4 * 1024**3
RATIO_CAP = 200
RATIO_FLOOR = 1024 * 1024  # the ratio cap applies to members expanding past this
CHUNK = 1024 * 1024
SNIFF_LINES = 1000

_DRIVE = re.compile(r"^[A-Za-z]:")


class ExportError(Exception):
    """A file we refuse; the message names the file and, when known, the line."""

    def __init__(self, file_name: str, reason: str, line: int | None = None) -> None:
        self.file_name = file_name
        self.line = line
        self.reason = reason
        where = f"{file_name}, line {line}" if line is not None else file_name
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class Member:
    """One file inside an uploaded zip (or the .txt itself)."""

    name: str
    size: int


def chat_name_from(file_name: str) -> str | None:
    """ "WhatsApp Chat with X.txt" / "WhatsApp Chat - X.zip" (and localised) -> "X"."""
    base = PurePosixPath(file_name.replace("\\", "/")).name
    stem, dot, ext = base.rpartition(".")
    if not dot or ext.lower() not in ("txt", "zip"):
        return None
    for prefix in vocabulary.CHAT_NAME_PREFIXES:
        for spelled in (prefix, prefix.replace(" ", "_")):
            if stem.casefold().startswith(spelled.casefold()) and len(stem) > len(spelled):
                return stem[len(spelled) :].replace("_", " ").strip() or None
    return None


class _CappedReader:
    """A zip member's stream that refuses to expand past its caps while it is read."""

    def __init__(self, export: "ExportFile", info: zipfile.ZipInfo) -> None:
        assert export._zip is not None
        self._export = export
        self._info = info
        self._raw = export._zip.open(info)
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(CHUNK if size < 0 else min(size, CHUNK))
        self._read += len(data)
        self._export._expanded += len(data)
        info, name = self._info, self._info.filename
        if self._read > info.file_size:
            raise ExportError(self._export.file_name, f"member {name!r} expands past its size")
        if self._read > RATIO_FLOOR and self._read > RATIO_CAP * max(info.compress_size, 1):
            raise ExportError(self._export.file_name, f"member {name!r} expands more than 200:1")
        if self._export._expanded > self._export.expanded_cap:
            raise ExportError(self._export.file_name, "the zip expands past the size cap")
        return data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ExportFile:
    """An uploaded export, opened from a local path (the stored upload copy): .txt or .zip."""

    def __init__(self, path: Path, file_name: str, expanded_cap: int) -> None:
        self.path = path
        self.file_name = file_name
        self.expanded_cap = expanded_cap
        self.chat_member: str | None = None
        self.members: list[Member] = []
        self.chat_name: str | None = chat_name_from(file_name)
        self._zip: zipfile.ZipFile | None = None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        self._expanded = 0

    @classmethod
    def open(
        cls, path: str | Path, file_name: str, *, expanded_cap: int = EXPANDED_CAP
    ) -> "ExportFile":
        export = cls(Path(path), file_name, expanded_cap)
        if zipfile.is_zipfile(export.path):
            try:
                export._open_zip()
            except (zipfile.BadZipFile, OSError, NotImplementedError) as error:
                export.close()
                raise ExportError(file_name, f"unreadable zip: {error}") from error
            except ExportError:
                export.close()
                raise
        return export

    def _open_zip(self) -> None:
        self._zip = zipfile.ZipFile(self.path)
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ExportError(self.file_name, f"more than {MAX_MEMBERS:,} members")
        total = 0
        for info in infos:
            self._check_member(info)
            total += info.file_size
        if total > self.expanded_cap:
            raise ExportError(self.file_name, f"expands to {total:,} bytes, past the size cap")
        files = [i for i in infos if not i.is_dir() and not _is_macos_extra(i.filename)]
        chat = self._find_chat(files)
        self.chat_member = chat.filename
        self._infos = {i.filename: i for i in files}
        self.members = [Member(i.filename, i.file_size) for i in files if i is not chat]
        self.chat_name = self.chat_name or chat_name_from(chat.filename)

    def _check_member(self, info: zipfile.ZipInfo) -> None:
        name = info.filename
        parts = name.split("/")
        if "\\" in name or name.startswith("/") or _DRIVE.match(name) or ".." in parts:
            raise ExportError(self.file_name, f"member {name!r} has an unsafe path")
        if info.flag_bits & 0x1:
            raise ExportError(self.file_name, f"member {name!r} is encrypted")
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > RATIO_CAP:
            raise ExportError(self.file_name, f"member {name!r} declares a {ratio:,.0f}:1 ratio")

    def _find_chat(self, files: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
        texts = [i for i in files if i.filename.lower().endswith(".txt")]
        texts.sort(key=lambda i: (i.filename.count("/"), i.filename))
        for info in texts:
            if PurePosixPath(info.filename).name == "_chat.txt":
                return info
        named = [i for i in texts if chat_name_from(i.filename) is not None]
        if named:
            return named[0]
        # No telling name: the first .txt that starts like an export (a zip of a media export
        # can hold .txt documents too), else the first one, which detect() will then refuse.
        for info in texts:
            if self._looks_like_export(info):
                return info
        if texts:
            return texts[0]
        raise ExportError(self.file_name, "the zip holds no chat text (_chat.txt or *.txt)")

    def _looks_like_export(self, info: zipfile.ZipInfo) -> bool:
        from imports.parsing.headers import match_header  # headers imports nothing from here

        for number, line in self._read_lines(info.filename, info):
            if match_header(line) is not None:
                return True
            if number >= SNIFF_LINES:
                break
        return False

    def lines(self) -> Iterator[tuple[int, str]]:
        """(1-based line number, text without its line end), streamed; UTF-8, BOM dropped."""
        for first, block in self.line_blocks():
            yield from enumerate(block, first)

    def line_blocks(self) -> Iterator[tuple[int, list[str]]]:
        """The lines in blocks (number of the first, texts)."""
        for number, text in self.texts():
            lines = text.split("\n")
            lines.pop()  # the empty text after the final "\n"
            yield number, lines

    def texts(self) -> Iterator[tuple[int, str]]:
        """The chat text in blocks of whole lines (number of the first line, text ending with
        "\n"), checked like lines(): what the parser scans, so that lines cost C time."""
        if self.chat_member is None:
            yield from _texts(self.path.open("rb"), self._chat_label())
        else:
            info = self._infos[self.chat_member]
            yield from _texts(_CappedReader(self, info), self._chat_label())

    def _read_lines(self, name: str, info: zipfile.ZipInfo) -> Iterator[tuple[int, str]]:
        label = f"{self.file_name}:{name}"
        try:
            for first, block in _blocks(_CappedReader(self, info), label):
                yield from enumerate(block, first)
        except ExportError:
            return

    def _chat_label(self) -> str:
        return (
            self.file_name if self.chat_member is None else f"{self.file_name}:{self.chat_member}"
        )

    def open_member(self, name: str) -> IO[bytes]:
        """A zip member, size-capped while reading (read() raises ExportError past the caps)."""
        if self._zip is None or name not in self._infos:
            raise ExportError(self.file_name, f"no member {name!r}")
        return _CappedReader(self, self._infos[name])  # type: ignore[return-value]

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _is_macos_extra(name: str) -> bool:
    return name.startswith("__MACOSX/") or "/__MACOSX/" in name


def _blocks(stream: "IO[bytes] | _CappedReader", label: str) -> Iterator[tuple[int, list[str]]]:
    for number, text in _texts(stream, label):
        lines = text.split("\n")
        lines.pop()  # the empty text after the final "\n"
        yield number, lines


def _texts(stream: "IO[bytes] | _CappedReader", label: str) -> Iterator[tuple[int, str]]:
    """Decode a byte stream CHUNK bytes at a time into texts of whole lines, each ending with
    "\n" (one is added after a last line that has none), never buffering a line longer than
    MAX_LINE_CHARS could be; CRLF and LF end lines, a lone CR stays in the text."""
    number = 1
    pending = b""
    first = True
    with stream:
        while True:
            data = stream.read(CHUNK)
            if not data:
                break
            pending += data
            cut = pending.rfind(b"\n")
            if cut < 0:
                if len(pending) > 4 * MAX_LINE_CHARS:  # 4 bytes per character at most
                    raise ExportError(label, "line longer than 1 MiB", number)
                continue
            block, pending = pending[: cut + 1], pending[cut + 1 :]
            text = _checked(_decode(block, label, number, first), label, number)
            first = False
            yield number, text
            number += text.count("\n")
        if pending:
            yield number, _checked(_decode(pending, label, number, first) + "\n", label, number)


def _decode(block: bytes, label: str, number: int, first: bool) -> str:
    # CRLF -> LF before splitting; a lone CR is text and stays. Done on the bytes, which is
    # cheaper than on the text (no byte of a multi-byte character is a CR or an LF, so the
    # text and the lines of a decoding error are the same).
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as error:
        line = number + block.count(b"\n", 0, error.start)
        raise ExportError(label, "invalid UTF-8", line) from error
    if first and text.startswith("\ufeff"):
        text = text[1:]
    return text


def _checked(text: str, label: str, number: int) -> str:
    if len(text) > MAX_LINE_CHARS:  # else no line can be longer: the usual case, no split
        lines = text.split("\n")
        if max(map(len, lines)) > MAX_LINE_CHARS:
            index = next(i for i, line in enumerate(lines) if len(line) > MAX_LINE_CHARS)
            raise ExportError(label, "line longer than 1 MiB", number + index)
    return text
