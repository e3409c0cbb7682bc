"""IMAP polling (bridge/imap.py) against a real IMAP server: Debian's dovecot, started from a
temporary directory with its own configuration (no system service), a passwd-file account per
test and Maildirs in the temporary directory. Test emails arrive by IMAP APPEND."""

import contextlib
import grp
import imaplib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from imap_tools.errors import MailboxLoginError

from bridge import imap, inbound, tasks
from bridge.models import InboundEmail
from bridge.tokens import reply_address
from tests.bridge.conftest import CLIENT, free_port, text_body

ACCOUNTS = 40  # passwd-file accounts written at start, one handed to each test


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)),
        None,
    )


@dataclass
class Account:
    server: "Dovecot"
    name: str
    password: str

    def url(self, folder: str = "INBOX", password: str | None = None) -> str:
        secret = quote(self.password if password is None else password, safe="")
        return f"imap://{self.name}:{secret}@{self.server.host}:{self.server.port}/{quote(folder)}"

    def connect(self, folder: str = "INBOX") -> imaplib.IMAP4:
        client = imaplib.IMAP4(self.server.host, self.server.port, timeout=10)
        client.login(self.name, self.password)
        if folder != "INBOX" and not client.list('""', f'"{folder}"')[1][0]:
            assert client.create(f'"{folder}"')[0] == "OK"
        assert client.select(f'"{folder}"')[0] == "OK"
        return client

    def deliver(self, raw: bytes, flags: str = "", folder: str = "INBOX") -> str:
        """APPEND `raw` as it is; the UID the server gave it."""
        client = self.connect(folder)
        try:
            status, data = client.append(f'"{folder}"', f"({flags})" if flags else None, None, raw)
            assert status == "OK", data
            match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
            assert match, data
            return match[1].decode()
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> dict[str, set[str]]:
        """Every message in the folder: UID -> its flags, as the server has them now."""
        client = self.connect(folder)
        try:
            status, data = client.uid("fetch", "1:*", "(FLAGS)")
            assert status == "OK", data
            found = {}
            for line in data:
                if isinstance(line, bytes) and (
                    m := re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line)
                ):
                    found[m[1].decode()] = set(m[2].decode().split())
            return found
        finally:
            client.logout()

    def set_flags(self, uid: str, change: str, flags: str, folder: str = "INBOX") -> None:
        client = self.connect(folder)
        try:
            status, data = client.uid("store", uid, change, f"({flags})")
            assert status == "OK", data
        finally:
            client.logout()


@dataclass
class Dovecot:
    host: str
    port: int
    directory: Path
    accounts: list[Account]

    def account(self) -> Account:
        return self.accounts.pop(0)

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(directory: Path, port: int, user: pwd.struct_passwd) -> str:
    group = grp.getgrgid(user.pw_gid).gr_name
    return f"""\
protocols = imap
listen = 127.0.0.1
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
ssl = no
auth_mechanisms = plain
disable_plaintext_auth = no
auth_failure_delay = 0
# Dovecot never runs login or mail processes as root: as root we use "nobody", otherwise
# everything runs as the current user (no chroot, which only root can do).
default_internal_user = {user.pw_name}
default_internal_group = {group}
default_login_user = {user.pw_name}
first_valid_uid = 1
mail_location = maildir:{directory}/mail/%u
passdb {{
  driver = passwd-file
  args = {directory}/users
}}
userdb {{
  driver = static
  args = uid={user.pw_uid} gid={user.pw_gid} home={directory}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
  # no auth penalty: the wrong-password test would otherwise slow every later login
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


def _greeted(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as probe:
            return probe.recv(64).startswith(b"* OK")
    except OSError:
        return False


@pytest.fixture(scope="module")
def imap_server() -> Iterator[Dovecot]:
    """A real dovecot on a free loopback port, for this module's tests."""
    binary = dovecot_binary()
    if binary is None:
        pytest.skip("dovecot is not installed (Debian package dovecot-imapd)")
    user = pwd.getpwnam("nobody") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
    directory = Path(tempfile.mkdtemp(prefix="cw-dovecot-"))  # short: socket paths are limited
    directory.chmod(0o755)  # the mail processes run as `user`
    for sub in ("run", "state", "mail", "home"):
        (directory / sub).mkdir()
        if sub in ("mail", "home") and os.geteuid() == 0:
            os.chown(directory / sub, user.pw_uid, user.pw_gid)
    server = Dovecot("127.0.0.1", free_port(), directory, [])
    lines = []
    for number in range(ACCOUNTS):
        # URL-significant characters, to check the URL's user and password are decoded
        account = Account(server, f"staff{number:02d}", f"p@ss/w%rd?#{number}")
        server.accounts.append(account)
        lines.append(f"{account.name}:{{PLAIN}}{account.password}::::::\n")
    (directory / "users").write_text("".join(lines))
    (directory / "dovecot.conf").write_text(_config(directory, server.port, user))
    with (directory / "stderr").open("wb") as errors:
        process = subprocess.Popen(
            [binary, "-F", "-c", str(directory / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            start_new_session=True,  # its own process group, stopped as one (see _stop)
        )
    try:
        deadline = time.monotonic() + 10
        while not _greeted(server.host, server.port):
            if process.poll() is not None or time.monotonic() > deadline:
                stderr = (directory / "stderr").read_text(errors="replace")
                pytest.fail(f"dovecot did not start:\n{stderr}\n{server.log()}")
            time.sleep(0.01)
        yield server
    finally:
        _stop(process)
        shutil.rmtree(directory, ignore_errors=True)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to dovecot's own process group: its master alone takes a second to stop."""
    with contextlib.suppress(ProcessLookupError):  # it may have failed to start
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # its children too, before their files are removed
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)


@pytest.fixture
def mailbox(imap_server: Dovecot) -> Account:
    """An account of its own (an empty Maildir) for this test."""
    return imap_server.account()


def reply(to: str, *, message_id: str, text: str = "Done, sold at 101.") -> bytes:
    return (
        f"From: RM <rm@bank.example>\r\nTo: {to}\r\n"
        f"Subject: Re: WhatsApp\r\nMessage-ID: <{message_id}>\r\n"
        "Date: Mon, 2 Jun 2025 10:00:00 +0000\r\n\r\n"
        f"{text}\r\n\r\nOn Mon, Jane wrote:\r\n> Please sell\r\n"
    ).encode()


def test_unseen_email_is_stored_exactly_then_seen(mailbox, db):
    # 8-bit UTF-8, a folded header, trailing blanks and no final line break: kept as delivered
    raw = (
        "From: RM <rm@bank.example>\r\nTo: reply+c1.abc@reply.bank.example\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n  folded\r\nMessage-ID: <exact@bank.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, verkauft zu 101 €.  \r\n\r\n\r\n-- "
    ).encode()
    uid = mailbox.deliver(raw)
    assert mailbox.flags() == {uid: set()}

    assert imap.poll(mailbox.url()) == 1
    stored = InboundEmail.objects.get()
    assert bytes(stored.raw) == raw
    assert stored.via == "imap"
    assert stored.state == InboundEmail.State.PENDING
    assert stored.message_id == "<exact@bank.example>"
    assert mailbox.flags() == {uid: {"\\Seen"}}

    assert imap.poll(mailbox.url()) == 0
    assert InboundEmail.objects.count() == 1


def test_seen_email_is_left_alone(mailbox, db):
    read = reply("reply+c1.abc@reply.bank.example", message_id="read@bank.example")
    fresh = reply("reply+c1.abc@reply.bank.example", message_id="fresh@bank.example")
    read_uid = mailbox.deliver(read, flags="\\Seen")
    fresh_uid = mailbox.deliver(fresh)

    assert imap.poll(mailbox.url()) == 1
    assert [bytes(r) for r in InboundEmail.objects.values_list("raw", flat=True)] == [fresh]
    assert mailbox.flags() == {read_uid: {"\\Seen"}, fresh_uid: {"\\Seen"}}


def test_other_folder_and_deleted_mail_are_kept(mailbox, db):
    """The URL names the folder; flagging \\Seen must not expunge what others marked \\Deleted."""
    folder = "Staff replies"
    deleted_uid = mailbox.deliver(b"Subject: old\r\n\r\nold\r\n", "\\Seen \\Deleted", folder)
    uid = mailbox.deliver(reply("x@example.com", message_id="f@bank.example"), folder=folder)
    mailbox.deliver(b"Subject: inbox\r\n\r\nnot this folder\r\n")

    assert imap.poll(mailbox.url(folder)) == 1
    assert InboundEmail.objects.get().message_id == "<f@bank.example>"
    assert mailbox.flags(folder) == {deleted_uid: {"\\Seen", "\\Deleted"}, uid: {"\\Seen"}}
    assert list(mailbox.flags().values()) == [set()]


def test_polled_reply_is_sent_to_the_client(mailbox, capture, route, smtp, meta):
    conversation = capture(text_body("Please sell 100 shares", wamid="wamid.I1"))
    mailbox.deliver(reply(reply_address(conversation.pk), message_id="r1@bank.example"))

    assert imap.poll(mailbox.url()) == 1
    assert inbound.process_pending() == 1
    stored = InboundEmail.objects.get()
    assert stored.state == InboundEmail.State.SENT, stored.reason
    assert stored.conversation == conversation and stored.sender == "rm@bank.example"
    (sent,) = meta.sends()
    assert sent["to"] == CLIENT and sent["text"]["body"] == "Done, sold at 101."


def test_same_email_twice_is_sent_once(mailbox, capture, route, smtp, meta):
    conversation = capture(text_body("Please sell 100 shares", wamid="wamid.I2"))
    raw = reply(reply_address(conversation.pk), message_id="twice@bank.example")
    mailbox.deliver(raw)
    mailbox.deliver(raw)

    assert imap.poll(mailbox.url()) == 2
    assert inbound.process_pending() == 2
    first, second = InboundEmail.objects.order_by("id")
    assert bytes(first.raw) == bytes(second.raw) == raw
    assert first.state == InboundEmail.State.SENT, first.reason
    assert second.state == InboundEmail.State.IGNORED
    assert second.reason == f"a copy of reply email {first.pk}"
    assert len(meta.sends()) == 1


def test_email_stored_but_not_flagged_is_not_sent_again(mailbox, capture, route, smtp, meta):
    """A crash after storing and before flagging \\Seen: the next poll stores it again, and the
    copy is recognised."""
    conversation = capture(text_body("Please sell 100 shares", wamid="wamid.I3"))
    uid = mailbox.deliver(reply(reply_address(conversation.pk), message_id="crash@bank.example"))
    assert imap.poll(mailbox.url()) == 1
    assert inbound.process_pending() == 1
    mailbox.set_flags(uid, "-FLAGS", "\\Seen")  # as if the flag had never been set

    assert imap.poll(mailbox.url()) == 1
    assert inbound.process_pending() == 1
    states = list(InboundEmail.objects.order_by("id").values_list("state", flat=True))
    assert states == [InboundEmail.State.SENT, InboundEmail.State.IGNORED]
    assert len(meta.sends()) == 1
    assert mailbox.flags() == {uid: {"\\Seen"}}


def test_wrong_password_raises_and_stores_nothing(mailbox, db):
    uid = mailbox.deliver(reply("x@example.com", message_id="pw@bank.example"))

    with pytest.raises(MailboxLoginError) as refused:
        imap.poll(mailbox.url(password="not-the-password"))
    assert "AUTHENTICATIONFAILED" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    assert not InboundEmail.objects.exists()
    assert mailbox.flags() == {uid: set()}


@pytest.mark.parametrize("unset", ["", None])
def test_poll_imap_without_url_does_nothing(unset, settings, monkeypatch):
    settings.IMAP_URL = unset

    def connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("an IMAP connection was attempted")

    monkeypatch.setattr(imap, "MailBox", connect)
    monkeypatch.setattr(imap, "MailBoxUnencrypted", connect)
    assert tasks.poll_imap() == 0
