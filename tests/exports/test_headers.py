"""RFC 5322 headers written from text a client chooses (exports/eml.py: header, header_bytes,
mailbox, header_text, encoded_words): every reader reads the text back, whatever it holds, and
every line is one an SMTP server takes. Found by the bridge's notification test: a 420-character
name of combining marks was written by email.utils.formataddr as one encoded word, a From line
of 1,073 octets the SMTP server refused."""

import re
from email import message_from_bytes
from email import policy as policies
from email.headerregistry import Address
from email.message import Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exports import eml
from tests.mail_headers import HARD, LOOKALIKES, decoded, longest_line, mailboxes, raw_headers

CLIENT = "+447700900123@whatsapp.invalid"
# words at the edge of a folded line: the first of each pair is written as it is, the second not
EDGES = ["w" * 75, "w" * 76, '"' * 37, '"' * 38, "\\" * 37, "\\" * 38]
ENCODED_WORD = re.compile(r"=\?utf-8\?(b\?[A-Za-z0-9+/]*=*|q\?[!->@-~]*)\?=")

names = st.one_of(
    st.sampled_from(HARD),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=300),
    st.lists(
        st.sampled_from([*HARD, *EDGES, "=?", "?=", " ", "é", "a", '"', "\\", ",", "<", "@"]),
        max_size=8,
    ).map("".join),
).map(eml.one_line)


def squash(text: str) -> str:
    return " ".join(text.split())


def header_of(data: bytes, name: str) -> str:
    (value,) = raw_headers(data, name)
    return value


@given(names.filter(bool))
def test_encoded_words_read_back_as_the_text_and_none_is_over_75_characters(text):
    words = eml.encoded_words(text).split(" ")
    assert all(ENCODED_WORD.fullmatch(w) and len(w) <= 75 for w in words)
    assert decoded(" ".join(words)) == text


@given(names)
def test_an_unstructured_header_reads_back_as_its_text(text):
    data = eml.header_bytes("Subject", text) + b"\r\n"
    assert longest_line(data) <= eml.LINE
    assert squash(decoded(header_of(data, "Subject"))) == squash(text)


@given(names)
def test_an_address_reads_back_as_its_name_and_address_only(text):
    data = eml.header_bytes("From", Address(text, addr_spec=CLIENT)) + b"\r\n"
    assert longest_line(data) <= eml.LINE
    ((display, address),) = mailboxes(header_of(data, "From"))
    assert (squash(display), address) == (squash(text), CLIENT)
    # and Python's own reader finds the one address too, whatever it makes of the name
    (parsed,) = message_from_bytes(data, policy=policies.default)["From"].addresses
    assert parsed.addr_spec == CLIENT


@given(names)
def test_a_mailbox_for_django_reads_back_as_its_name_and_address_only(text):
    value = eml.mailbox(f"{text} via ClientWindow", "clientwindow@bank.example")
    assert value.isascii() and "\n" not in value
    message = Message()  # the legacy API Django's mail uses, folding at 78
    message["From"] = value
    data = message.as_bytes(policy=policies.compat32.clone(linesep="\r\n"))
    assert longest_line(data) <= eml.LINE
    ((display, address),) = mailboxes(header_of(data, "From"))
    assert squash(display) == squash(f"{text} via ClientWindow")
    assert address == "clientwindow@bank.example"


@given(names)
def test_header_text_for_django_reads_back_as_its_text(text):
    value = eml.header_text(f"WhatsApp: {text}")
    assert value.isascii() and "\n" not in value
    message = Message()
    message["Subject"] = value
    data = message.as_bytes(policy=policies.compat32.clone(linesep="\r\n"))
    assert longest_line(data) <= eml.LINE
    assert squash(decoded(header_of(data, "Subject"))) == squash(f"WhatsApp: {text}")


@pytest.mark.parametrize("name", EDGES)
def test_a_word_is_written_as_it_is_only_while_it_fits_a_line(name):
    data = eml.header_bytes("To", Address(f"Jane {name}", addr_spec=CLIENT)) + b"\r\n"
    assert eml.written_as_is(name) == (EDGES.index(name) % 2 == 0)
    assert longest_line(data) <= eml.LINE
    assert mailboxes(header_of(data, "To")) == [(f"Jane {name}", CLIENT)]


@pytest.mark.parametrize("name", LOOKALIKES)
def test_a_name_made_of_encoded_words_shows_as_typed(name):
    data = eml.header_bytes("From", Address(name, addr_spec=CLIENT)) + b"\r\n"
    assert mailboxes(header_of(data, "From")) == [(name, CLIENT)]
    subject = eml.header_bytes("Subject", f"WhatsApp: {name}") + b"\r\n"
    assert decoded(header_of(subject, "Subject")) == f"WhatsApp: {name}"


@given(names)
def test_what_the_email_package_writes_faithfully_is_left_to_it(text):
    """So an EML whose names are plain ASCII within a line is what it was before (EXPORTS.md)."""
    assert (eml.header("Subject", text) is text) == eml.written_as_is(text)
    address = Address(text, addr_spec=CLIENT)
    assert (eml.header("From", address) is address) <= eml.written_as_is(text)
    if eml.written_as_is(text) and len(text) <= 37:  # fits a line even quoted and escaped
        assert eml.header("From", address) is address
