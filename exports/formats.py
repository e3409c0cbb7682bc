"""The export formats and the one contract their writers keep.

A writer is `write(source: Source, target: Target, prefix: str = "") -> None`: it reads the
scope through `source.parts()` (exports/source.py: conversations, then decorated rows in chunks,
as of the export's checkpoint) and writes its file(s) with `target.open(prefix + name)`
(exports/target.py). It never reads the wall clock (times come from the source), never holds
more than a chunk of rows, and writes the same bytes for the same source apart from the export's
own id and time. The evidence bundle calls the other writers with a prefix each (PDF, CSV),
or with a ZIP of their own nested in it (EML, RSMF: exports/bundle.py's ZipStream).
"""

from collections.abc import Callable
from importlib import import_module

from .source import Source
from .target import Target

Writer = Callable[[Source, Target, str], None]

# format -> (module with `write`, the file it yields when it yields one, passes over the rows)
FORMATS: dict[str, tuple[str, str | None, int]] = {
    "pdf": ("exports.pdf", "transcript.pdf", 1),
    "csv": ("exports.csv", "messages.csv", 1),
    "eml": ("exports.eml", None, 1),
    "rsmf": ("exports.rsmf", None, 1),
    "bundle": ("exports.bundle", None, 5),
}


def writer(fmt: str) -> Writer:
    module, _, _ = FORMATS[fmt]
    write: Writer = import_module(module).write
    return write


def single_file(fmt: str) -> str | None:
    """The one file a format yields (pdf, csv), or None when it yields several (zipped)."""
    return FORMATS[fmt][1]


def passes(fmt: str) -> int:
    return FORMATS[fmt][2]
