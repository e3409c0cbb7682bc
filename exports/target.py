"""Where an export's files go: a directory (the CLI's --output) or a ZIP (what the portal and
the API hand out, and the evidence bundle). Writers only ever call `target.open(name)`.

Every file written is hashed as it streams (SHA-256 and size, `target.files`), which is what a
bundle's manifest lists. ZIP members get a fixed timestamp and a fixed mode so the same content
gives the same bytes; names are checked so that nothing can escape the archive or the directory.
"""

import hashlib
import re
import zipfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a ZIP can say: no wall clock in the bytes
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


@dataclass(frozen=True)
class FileRecord:
    name: str
    size: int
    sha256: str


class Target(Protocol):
    """What writers write to: `with target.open("dir/name.ext") as out: out.write(b"...")`."""

    files: list[FileRecord]

    def open(self, name: str) -> AbstractContextManager[BinaryIO]: ...


def safe_component(text: str, fallback: str = "file", limit: int = 80) -> str:
    """One path component made of harmless characters, never empty, never '.' or '..'."""
    cleaned = _UNSAFE.sub("-", text).strip("-.")[:limit].strip("-.")
    return cleaned or fallback


def checked_name(name: str) -> str:
    """A relative POSIX path whose every component is safe; ValueError otherwise."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or name != str(path):
        raise ValueError(f"unsafe export file name {name!r}")
    for part in path.parts:
        if part in (".", "..") or safe_component(part, fallback="") != part:
            raise ValueError(f"unsafe export file name {name!r}")
    return name


class _Hashing:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()

    def writable(self) -> bool:
        return True


class DirectoryTarget:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[FileRecord] = []

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        path = self.root / checked_name(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("xb") as raw:
            hashing = _Hashing(raw)
            yield hashing  # type: ignore[misc]
        self.files.append(FileRecord(name, hashing.size, hashing.digest.hexdigest()))


class ZipTarget:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive
        self.files: list[FileRecord] = []
        self._names: set[str] = set()

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        checked_name(name)
        if name in self._names:
            raise ValueError(f"{name!r} written twice")
        self._names.add(name)
        info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        with self.archive.open(info, "w", force_zip64=True) as raw:
            hashing = _Hashing(raw)  # type: ignore[arg-type]
            yield hashing  # type: ignore[misc]
        self.files.append(FileRecord(name, hashing.size, hashing.digest.hexdigest()))


@contextmanager
def zip_target(path: Path) -> Iterator[ZipTarget]:
    with zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        yield ZipTarget(archive)
