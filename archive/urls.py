"""The read API monitors follow, under /ledger/ (archive/ledger_api.py)."""

from django.urls import path

from archive import ledger_api

app_name = "ledger"
urlpatterns = [
    path("", ledger_api.index, name="index"),
    path("checkpoint", ledger_api.checkpoint, name="checkpoint"),
    path("tile/<path:path>", ledger_api.tile, name="tile"),
]
