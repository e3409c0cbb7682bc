"""`manage.py import_chat`: files imported one after the other, authors mapped from the command
line, an undecidable date order stopped with the preview, --dry-run storing nothing."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from messaging.models import Channel, ChatExport, Message

from .importing import FIXTURES, make_channel

AMBIGUOUS = b"01/02/2021, 10:00 - Ann: one\n03/04/2021, 11:00 - Loris: two\n"


@pytest.fixture
def channel(db: None) -> Channel:
    return make_channel()


def command(*args: str) -> None:
    call_command("import_chat", *args, "--channel", "1001", "--custodian", "Loris")


def test_it_imports_several_files_one_after_the_other(channel: Channel, capsys) -> None:
    names = ["chat-miner__ddmmyy_24hrs.txt", "egregora__Conversa_do_WhatsApp_com_Teste.zip"]
    command(*(str(FIXTURES / n) for n in names), "--timezone", "Europe/Lisbon")
    assert ChatExport.objects.count() == 2
    assert capsys.readouterr().out.count("imported as export #") == 2


def test_it_maps_a_participant_given_by_number(channel: Channel) -> None:
    path = str(FIXTURES / "port-whatsapp-datadonation__file3_android_ddmmyyyy_crlf.txt")
    command(path, "--participant", "person2=+31 6 1234 5678")
    assert Message.objects.filter(sender__wa_id="31612345678").count() == 3


def test_it_stops_on_an_undecidable_date_order_with_the_preview(
    channel: Channel, tmp_path: Path, capsys
) -> None:
    path = tmp_path / "ambiguous.txt"
    path.write_bytes(AMBIGUOUS)
    with pytest.raises(CommandError, match="not imported"):
        command(str(path))
    captured = capsys.readouterr()
    assert "--date-order" in captured.err and '"entries": 2' in captured.out
    assert not Message.objects.exists()


def test_it_imports_with_the_date_order_given(channel: Channel, tmp_path: Path) -> None:
    path = tmp_path / "ambiguous.txt"
    path.write_bytes(AMBIGUOUS)
    command(str(path), "--date-order", "mdy")
    first = Message.objects.order_by("sent_at").first()
    assert first is not None and first.payload["import"]["local_time"] == "2021-01-02T10:00:00"


def test_a_dry_run_prints_the_preview_and_stores_nothing(channel: Channel, capsys) -> None:
    command(str(FIXTURES / "langchain__ios_dr_feather.txt"), "--dry-run")
    assert '"detected"' in capsys.readouterr().out
    assert not ChatExport.objects.exists()


def test_it_fails_for_an_unknown_channel(db: None) -> None:
    with pytest.raises(CommandError, match="no channel"):
        command(str(FIXTURES / "chat-miner__ddmmyy_24hrs.txt"))
