import pytest
from django.core.management import call_command, get_commands
from django.core.management.base import CommandError

from archive import ledger, signing
from archive.checkpoints import verifier_key_text
from archive.ledger import Fact
from archive.models import Checkpoint

pytestmark = pytest.mark.django_db


def test_it_checkpoints_from_the_command_line(capsys):
    ledger.append([Fact("test.fact")])
    call_command("checkpoint")
    assert "clientwindow.local/ledger\n1\n" in capsys.readouterr().out
    assert Checkpoint.objects.get().tree_size == 1


def test_it_says_when_there_is_nothing_to_checkpoint(capsys):
    call_command("checkpoint")
    assert "No new entries" in capsys.readouterr().out


def test_it_exports_the_verifier_key_and_pem(capsys):
    call_command("export_public_key")
    out = capsys.readouterr().out
    assert out.startswith(verifier_key_text() + "\n")
    assert "-----BEGIN PUBLIC KEY-----" in out


def test_it_creates_a_signing_key_and_prints_its_verifier_key(tmp_path, capsys):
    call_command("create_signing_key", str(tmp_path / "k.pem"))
    verifier = signing.parse_verifier_key(capsys.readouterr().out)
    assert verifier.public_key == signing.load_private_key(tmp_path / "k.pem").public_key()


def test_it_refuses_to_overwrite_a_signing_key(tmp_path):
    (tmp_path / "k.pem").write_text("precious")
    with pytest.raises(CommandError, match="refusing"):
        call_command("create_signing_key", str(tmp_path / "k.pem"))


def test_it_migrates_as_the_owner_by_default():
    assert get_commands()["migrate"] == "archive"
    parser = __import__("archive.management.commands.migrate", fromlist=["Command"])
    assert parser.Command().create_parser("manage.py", "migrate").parse_args([]).database == "owner"


def test_it_creates_the_demo_admin_once(capsys, settings):
    settings.LOCAL_RUN = True
    call_command("ensure_demo_admin")
    assert "Demo administrator created: admin / " in capsys.readouterr().out
    call_command("ensure_demo_admin")
    assert "created" not in capsys.readouterr().out


def test_it_never_creates_a_demo_admin_in_production(settings):
    settings.LOCAL_RUN = False
    with pytest.raises(CommandError):
        call_command("ensure_demo_admin")
