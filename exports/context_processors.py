"""What every page's export controls offer (templates of review and retention show them), given
by exports itself so that the floors below it need not import it (docs/ARCHITECTURE.md)."""

from typing import Any

from django.http import HttpRequest

from exports.models import Export


def export_formats(request: HttpRequest) -> dict[str, Any]:
    return {"export_formats": Export.Format.choices}
