"""The whole path with the real writers: `manage.py export` writes an evidence bundle that the
bundle's own verify.py accepts with the portal's verifier key pinned; a portal job writes a PDF."""

import zipfile
from io import StringIO
from pathlib import Path
from typing import Any

from django.core.management import call_command

from archive import checkpoints, objectstore
from exports import jobs
from exports.models import Export
from exports.scope import Scope
from tests.exports.conftest import RICH_NUMBER, Rich
from tests.exports.test_bundle import nested_names, system_verify, unpack


def test_it_exports_a_bundle_from_the_command_line_that_verifies(
    rich: Rich, tmp_path: Path
) -> None:
    target = tmp_path / "evidence.zip"
    call_command(
        "export",
        "--participant",
        RICH_NUMBER,
        "--format",
        "bundle",
        "--output",
        str(target),
        stdout=StringIO(),
    )
    names = zipfile.ZipFile(target).namelist()
    assert {"manifest.json", "manifest.sig", "verify.py", "VERIFY.md"} <= set(names)
    assert any(n.endswith(".pdf") for n in names) and "rsmf.zip" in names
    assert any(n.endswith(".rsmf") for n in nested_names(target, "rsmf.zip"))
    key = checkpoints.verifier_key_text()
    code, said = system_verify(target, "--key", key)
    assert code == 0, said
    unpacked = unpack(target, tmp_path / "unpacked")  # as an auditor would: its own verify.py
    code, said = system_verify(unpacked, "--key", key, script=unpacked / "verify.py")
    assert code == 0, said


def test_it_runs_a_portal_job_to_a_pdf(
    rich: Rich, auditor: Any, settings: Any, tmp_path: Path
) -> None:
    settings.EXPORT_ROOT = tmp_path / "exports"
    export = jobs.request_export(auditor, Scope.for_conversation(rich.conversation.pk), "pdf")
    assert jobs.run_export(str(export.pk)) == Export.State.DONE, Export.objects.get().error
    name = jobs.stored_name(Export.objects.get())
    assert name is not None and b"".join(objectstore.exports().stream(name)).startswith(b"%PDF-")
