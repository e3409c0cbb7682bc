"""ExportFile: the upload opened safely (zip layout, traversal, bombs, encodings, line caps)."""

import zipfile
from pathlib import Path

import pytest

from imports.parsing import MAX_LINE_CHARS, ExportError, ExportFile, chat_name_from, detect

CHAT = "16/03/2022, 15:20 - Alice: Hi\n16/03/2022, 15:21 - Bob: Yo\n"


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, zipfile.ZIP_DEFLATED)
    return path


@pytest.mark.parametrize(
    "name", ["../evil.txt", "a/../../evil.txt", "/etc/evil.txt", "a\\b.txt", "C:evil.txt"]
)
def test_it_refuses_unsafe_member_names_naming_them(tmp_path: Path, name: str) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode(), name: b"x"})
    with pytest.raises(ExportError, match="unsafe path") as refused:
        ExportFile.open(path, "x.zip")
    assert repr(name) in str(refused.value)


def test_it_refuses_a_member_declaring_more_than_200_to_1(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode(), "bomb.bin": bytes(3 << 20)})
    with pytest.raises(ExportError, match=r"bomb\.bin.*ratio"):
        ExportFile.open(path, "x.zip")


def test_it_lets_small_compressible_members_through(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode(), "zeros.bin": bytes(1 << 20)})
    with ExportFile.open(path, "x.zip") as export:
        assert [m.name for m in export.members] == ["zeros.bin"]


def test_it_refuses_a_zip_past_the_expanded_cap(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode(), "a.jpg": b"x" * 5000})
    with pytest.raises(ExportError, match="size cap"):
        ExportFile.open(path, "x.zip", expanded_cap=4000)


def test_it_enforces_the_caps_while_reading_too(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode(), "a.jpg": b"x" * 5000})
    with ExportFile.open(path, "x.zip") as export:
        export.expanded_cap = 1000  # as if the declared sizes had lied
        with pytest.raises(ExportError, match="size cap"), export.open_member("a.jpg") as member:
            member.read()


def test_it_refuses_encrypted_members(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"_chat.txt": CHAT.encode()})
    data = bytearray(path.read_bytes())  # zipfile cannot write encrypted members: set the bit
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x1
    path.write_bytes(bytes(data))
    with pytest.raises(ExportError, match="encrypted"):
        ExportFile.open(path, "x.zip")


def test_it_refuses_a_zip_without_chat_text(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"a.jpg": b"x"})
    with pytest.raises(ExportError, match="no chat text"):
        ExportFile.open(path, "x.zip")


def test_it_finds_the_chat_in_a_top_folder_and_ignores_macosx(tmp_path: Path) -> None:
    members = {
        "__MACOSX/Chat/._WhatsApp Chat with Bob.txt": b"\x00\x05",
        "Chat/WhatsApp Chat with Bob.txt": CHAT.encode(),
        "Chat/notes.txt": b"just a document",
        "Chat/media/IMG-20220316-WA0001.jpg": b"jpg",
        "Chat/old.zip": b"PK\x05\x06" + bytes(18),
    }
    path = make_zip(tmp_path / "x.zip", members)
    with ExportFile.open(path, "upload.zip") as export:
        assert export.chat_member == "Chat/WhatsApp Chat with Bob.txt"
        assert export.chat_name == "Bob"
        assert [m.name for m in export.members] == [
            "Chat/notes.txt",
            "Chat/media/IMG-20220316-WA0001.jpg",
            "Chat/old.zip",
        ]
        assert detect(export).header_lines == 2


def test_it_picks_the_txt_that_reads_like_an_export(tmp_path: Path) -> None:
    path = make_zip(tmp_path / "x.zip", {"a-notes.txt": b"shopping list\n", "b.txt": CHAT.encode()})
    with ExportFile.open(path, "x.zip") as export:
        assert export.chat_member == "b.txt"


@pytest.mark.parametrize(
    ("name", "chat"),
    [
        ("WhatsApp Chat with Bob Smith.txt", "Bob Smith"),
        ("WhatsApp Chat - Project Team.zip", "Project Team"),
        ("WhatsApp_Chat_with_Bob.txt", "Bob"),
        ("Conversa do WhatsApp com Teste.txt", "Teste"),
        ("Chat de WhatsApp con Ana.txt", "Ana"),
        ("WhatsApp Chat mit Jan.txt", "Jan"),
        ("Discussion WhatsApp avec Zoé.txt", "Zoé"),
        ("Чат WhatsApp с Иван.txt", "Иван"),  # noqa: RUF001 (Cyrillic on purpose)
        ("_chat.txt", None),
        ("export.zip", None),
    ],
)
def test_it_reads_the_chat_name_from_the_file_name(name: str, chat: str | None) -> None:
    assert chat_name_from(name) == chat


def test_it_names_the_line_of_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(CHAT.encode() + b"16/03/2022, 15:22 - Bob: \xff\n")
    with (
        pytest.raises(ExportError, match="invalid UTF-8") as refused,
        ExportFile.open(path, "chat.txt") as export,
    ):
        list(export.lines())
    assert (refused.value.line, refused.value.file_name) == (3, "chat.txt")


def test_it_names_a_line_over_one_mib(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(CHAT.encode() + b"x" * (MAX_LINE_CHARS + 1) + b"\nend\n")
    with (
        pytest.raises(ExportError, match="longer than 1 MiB") as refused,
        ExportFile.open(path, "c.txt") as export,
    ):
        list(export.lines())
    assert refused.value.line == 3


def test_it_never_buffers_an_endless_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(b"x" * (5 * MAX_LINE_CHARS))
    with (
        pytest.raises(ExportError, match="longer than 1 MiB") as refused,
        ExportFile.open(path, "c.txt") as export,
    ):
        list(export.lines())
    assert refused.value.line == 1


def test_it_drops_the_bom_and_splits_crlf_and_lf_only(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_bytes(b"\xef\xbb\xbfa\r\nb\rc\nd")
    with ExportFile.open(path, "chat.txt") as export:
        assert list(export.lines()) == [(1, "a"), (2, "b\rc"), (3, "d")]


def test_it_refuses_a_text_that_is_no_export(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("\n".join(f"line {i}" for i in range(1200)))
    with (
        pytest.raises(ExportError, match="not a WhatsApp chat export"),
        ExportFile.open(path, "notes.txt") as export,
    ):
        detect(export)


def test_it_refuses_text_before_the_first_header(tmp_path: Path) -> None:
    from tests.imports.generator import text_export

    with pytest.raises(ExportError, match="before the first message header") as refused:
        text_export(tmp_path, ["hello", "16/03/2022, 15:20 - Alice: Hi"])
    assert refused.value.line == 1
