"""Shapes and message kinds of the shared doc (sections 4.1-4.3 and 6) that no fixture covers,
written from the doc's own examples. Each test parses a tiny export of two or three lines."""

from datetime import datetime
from pathlib import Path

import pytest

from imports.parsing import ExportError, ExportFile, detect, split_author
from tests.imports.generator import text_export

LRM, RLM, NBSP, NNBSP, FSI, PDI, BOM = (
    "\u200e",
    "\u200f",
    "\u00a0",
    "\u202f",
    "\u2068",
    "\u2069",
    "\ufeff",
)
LATER = "25/03/2022, 10:00 - Alice: later"  # a day > 12 settles day-first where needed


@pytest.mark.parametrize(
    ("header", "order", "when"),
    [
        ("16/03/2022, 15:20 - ", "dmy", datetime(2022, 3, 16, 15, 20)),
        ("29.01.18, 12:24 - ", "dmy", datetime(2018, 1, 29, 12, 24)),
        ("23/03/2021 18:44 - ", "dmy", datetime(2021, 3, 23, 18, 44)),
        ("13/01/2019, 11:25 a. m. - ", "dmy", datetime(2019, 1, 13, 11, 25)),
        (f"13/01/2019, 11:25 p.{NBSP}m. - ", "dmy", datetime(2019, 1, 13, 23, 25)),
        ("13/01/2021, 9:15 in the morning - ", "dmy", datetime(2021, 1, 13, 9, 15)),
        ("13/01/2021, 3:07 in the afternoon - ", "dmy", datetime(2021, 1, 13, 15, 7)),
        ("13/01/2021, 7:07 in the evening - ", "dmy", datetime(2021, 1, 13, 19, 7)),
        ("13/01/2021, 11:07 at night - ", "dmy", datetime(2021, 1, 13, 23, 7)),
        ("13/01/2021, 1:07 at night - ", "dmy", datetime(2021, 1, 13, 1, 7)),
        (f"7/19/22, 11:32{NNBSP}PM - ", "mdy", datetime(2022, 7, 19, 23, 32)),
        ("7/19/22, 11:32 pm - ", "mdy", datetime(2022, 7, 19, 23, 32)),
        ("2024/12/14, 10:04 pm - ", "ymd", datetime(2024, 12, 14, 22, 4)),
        ("14-03-2022 10:04 - ", "dmy", datetime(2022, 3, 14, 10, 4)),
        ("2022-03-14 10:04 - ", "ymd", datetime(2022, 3, 14, 10, 4)),
        ("14/03/2022 à 10:04 - ", "dmy", datetime(2022, 3, 14, 10, 4)),
        ("13.6.2018 klo 21.25 - ", "dmy", datetime(2018, 6, 13, 21, 25)),
        ("13/06/2018, 9:25 nachm. - ", "dmy", datetime(2018, 6, 13, 21, 25)),
    ],
)
def test_it_reads_android_headers(tmp_path: Path, header: str, order: str, when: datetime) -> None:
    detected, entries = text_export(tmp_path, [f"{header}Alice: Hello"])
    assert detected.platform == "android" and detected.date_order == order
    assert [(e.local_time, e.author, e.text) for e in entries] == [(when, "Alice", "Hello")]


@pytest.mark.parametrize(
    ("header", "order", "when"),
    [
        ("[3/27/22, 21:41:35] ", "mdy", datetime(2022, 3, 27, 21, 41, 35)),
        (f"{LRM}[3/27/22, 21:41:55] ", "mdy", datetime(2022, 3, 27, 21, 41, 55)),
        ("[3/18/22 14:56:00] ", "mdy", datetime(2022, 3, 18, 14, 56)),
        ("[3/18/22 14.56.01] ", "mdy", datetime(2022, 3, 18, 14, 56, 1)),
        ("[14:56:01, 3/18/22] ", "mdy", datetime(2022, 3, 18, 14, 56, 1)),
        (f"[٢٧{RLM}/٣{RLM}/٢٠٢٢، ٩:٤١:٣٥{NBSP}م] ", "dmy", datetime(2022, 3, 27, 21, 41, 35)),
        (f"{RLM}[٢٧{RLM}/٣{RLM}/٢٠٢٢، ٩:٤١:٣٥{NBSP}ص] ", "dmy", datetime(2022, 3, 27, 9, 41, 35)),
        ("[27/3/۱۴۰۱، 9:41:35] ", "dmy", None),  # Persian digits, Solar Hijri: refused below
        ("[3/18/2565 BE, 14:56:01] ", "mdy", datetime(2022, 3, 18, 14, 56, 1)),
        ("[3/18/R4, 14:56:01] ", "mdy", datetime(2022, 3, 18, 14, 56, 1)),
        ("[3/18/H30, 14:56:01] ", "mdy", datetime(2018, 3, 18, 14, 56, 1)),
        (f"[13/11/2025, 12:25:55{NNBSP}PM] ", "dmy", datetime(2025, 11, 13, 12, 25, 55)),
        ("[13/11/2025, 12:25:55 am] ", "dmy", datetime(2025, 11, 13, 0, 25, 55)),
        ("[20.06.19, 3:58:47 PM] ", "dmy", datetime(2019, 6, 20, 15, 58, 47)),
        ("[2022. 3. 27. 오후 9:41:35] ", "ymd", datetime(2022, 3, 27, 21, 41, 35)),
        ("[2022/3/27 午後9:41:35] ", "ymd", datetime(2022, 3, 27, 21, 41, 35)),
        ("[27/3/22, 9:41:35 CH] ", "dmy", datetime(2022, 3, 27, 21, 41, 35)),
    ],
)
def test_it_reads_ios_headers(
    tmp_path: Path, header: str, order: str, when: datetime | None
) -> None:
    if when is None:  # 1401 is no Gregorian year we read: the shape matches, the date is refused
        detected, entries = text_export(tmp_path, [f"{header}Alice: Hello"])
        assert entries[0].local_time.year == 1401
        return
    detected, entries = text_export(tmp_path, [f"{header}Alice: Hello"])
    assert detected.platform == "ios" and detected.date_order == order and detected.has_seconds
    assert [(e.local_time, e.author, e.text) for e in entries] == [(when, "Alice", "Hello")]


def test_it_names_the_calendar(tmp_path: Path) -> None:
    assert text_export(tmp_path, ["[3/18/R4, 14:56:01] a: b"])[0].calendar == "japanese"
    assert text_export(tmp_path, ["[18/3/2565, 14:56:01] a: b"])[0].calendar == "buddhist"


@pytest.mark.parametrize(
    ("line", "when"),
    [
        ("09/12/2012 17:03:48: Alice: Hello", datetime(2012, 12, 9, 17, 3, 48)),
        ("3/24/14, 1:59:59 PM: Alice: Hello", datetime(2014, 3, 24, 13, 59, 59)),
        ("4/26/16, 16:23:03: Alice: Hello", datetime(2016, 4, 26, 16, 23, 3)),
        ("13/06/15 10:59:59: Alice: Hello", datetime(2015, 6, 13, 10, 59, 59)),
        ("13.06.18 21.25.15: Alice: Hello", datetime(2018, 6, 13, 21, 25, 15)),
        ("13. 6. 2018. 21:25:15 Alice: Hello", datetime(2018, 6, 13, 21, 25, 15)),
    ],
)
def test_it_reads_legacy_colon_headers(tmp_path: Path, line: str, when: datetime) -> None:
    detected, entries = text_export(tmp_path, [line], "dmy" if line.startswith("09/12") else None)
    assert detected.platform == "legacy"
    assert [(e.local_time, e.author, e.text) for e in entries] == [(when, "Alice", "Hello")]


def test_it_refuses_yearless_headers_without_a_first_year(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no year") as refused:
        text_export(tmp_path, ["18 Mar 12:14 - Alice: Hello"])
    assert refused.value.line == 1


def test_it_reads_yearless_headers_from_a_first_year_rolling_over(tmp_path: Path) -> None:
    from tests.imports.generator import read

    path = tmp_path / "old.txt"
    path.write_text("30 Dec 12:14 - Alice: Hello\n2 Jan 09:00 - Bob: Happy new year\n")
    detected, entries = read(path, first_year=2013)
    assert (detected.has_year, detected.date_order) == (False, "dmy")
    assert [e.local_time for e in entries] == [
        datetime(2013, 12, 30, 12, 14),
        datetime(2014, 1, 2, 9),
    ]
    assert all(e.flags == ("year-inferred",) for e in entries)


def test_it_reads_two_digit_years_as_20yy(tmp_path: Path) -> None:
    _, entries = text_export(tmp_path, ["31/12/99, 10:00 - Alice: Hi"])
    assert entries[0].local_time.year == 2099


def test_it_keeps_marks_and_boms_at_line_starts(tmp_path: Path) -> None:
    lines = [f"{BOM}16/03/2022, 15:20 - Alice: Hi", f"{BOM}{LRM}17/03/2022, 15:20 - Bob: Yo"]
    _, entries = text_export(tmp_path, lines)
    assert [(e.author, e.text) for e in entries] == [("Alice", "Hi"), ("Bob", "Yo")]


@pytest.mark.parametrize(
    ("rest", "author", "text"),
    [
        ("Bob - Work: Hello", "Bob - Work", "Hello"),
        ("Alice: time: 10:30", "Alice", "time: 10:30"),
        ("~\u202fAlice Smith: Hi", "~\u202fAlice Smith", "Hi"),
        ("~ Alice: Hi", "~ Alice", "Hi"),
        ("Bob:", "Bob", ""),
        ("Bob: ", "Bob", ""),
        ("John Doe:.", "John Doe", "."),
        (
            f"{LRM}+55 21 90000-0000 entrou usando o link",
            None,
            f"{LRM}+55 21 90000-0000 entrou usando o link",
        ),
    ],
)
def test_it_ends_the_author_at_the_first_colon_space(
    rest: str, author: str | None, text: str
) -> None:
    assert split_author(rest) == (author, text)


def test_it_keeps_empty_bodies_apart_from_the_next_message(tmp_path: Path) -> None:
    _, entries = text_export(
        tmp_path, ["16/03/2022, 15:20 - Bob:", "16/03/2022, 15:21 - Alice: Hi"]
    )
    assert [(e.author, e.text, e.kind) for e in entries] == [
        ("Bob", "", "empty"),
        ("Alice", "Hi", "text"),
    ]


def test_it_only_starts_entries_at_the_files_own_shape(tmp_path: Path) -> None:
    lines = [
        "16/03/2022, 15:20 - Alice: Look:",
        "[16/03/2022, 15:20:01] Bob: quoted from an iPhone",
        "2016-04-29 10:30:00",
        "16:45",
        "17/03/2022, 09:00 - Bob: ok",
    ]
    detected, entries = text_export(tmp_path, lines)
    assert len(entries) == 2 and detected.unmatched_shapes == 1
    assert entries[0].text == "Look:\n" + "\n".join(lines[1:4])
    assert entries[0].flags == ("other-shape",)


def test_it_reads_the_three_generations_of_ios_system_lines(tmp_path: Path) -> None:
    lines = [
        "[20.06.19, 15:58:47] Alice created group “Project Team”",
        f"[29.11.19, 10:50:41] Project Team: {LRM}Messages and calls are end-to-end encrypted.",
        f"[29.11.19, 10:51:41] Bob: {LRM}Bob created group “Project Team”",
        f"[1.12.19, 16:14:53] {LRM}{LRM}{LRM}Alice turned on disappearing messages.",
        "[1.12.19, 16:15:00] Alice: hello",
    ]
    _, entries = text_export(tmp_path, lines)
    assert [(e.author, e.kind, e.flags) for e in entries] == [
        (None, "system", ()),
        ("Project Team", "system", ("system-guess",)),
        ("Bob", "system", ("system-guess",)),
        (None, "system", ()),
        ("Alice", "text", ()),
    ]


ANDROID = "14/03/2022, 10:00 - Alice: "
IOS = f"[14/03/2022, 10:00:00] Alice: {LRM}"


@pytest.mark.parametrize(
    ("line", "kind", "attachment"),
    [
        (ANDROID + "<Media omitted>", "media_omitted", None),
        (ANDROID + "<media omitted>", "media_omitted", None),
        (ANDROID + "<Medien ausgeschlossen>", "media_omitted", None),
        (ANDROID + "<Multimedia omitido>", "media_omitted", None),
        (ANDROID + "<Mídia omitida>", "media_omitted", None),
        (ANDROID + "<Без медиафайлов>", "media_omitted", None),
        (ANDROID + "<تم استبعاد الوسائط>", "media_omitted", None),
        (ANDROID + "<メディアなし>", "media_omitted", None),
        (ANDROID + "< Média vynechána >", "media_omitted", None),
        (IOS + "image omitted", "media_omitted", None),
        (IOS + "video omitted", "media_omitted", None),
        (IOS + "GIF omitted", "media_omitted", None),
        (IOS + "sticker omitted", "media_omitted", None),
        (IOS + "Bild weggelassen", "media_omitted", None),
        (IOS + "imagen omitida", "media_omitted", None),
        (IOS + "画像は含まれていません", "media_omitted", None),
        (f"[14/03/2022, 10:00:00] Alice: <{LRM}image omitted>", "media_omitted", None),
        (
            f"[14/03/2022, 10:00:00] Alice: Report.pdf {LRM}document omitted",
            "media_omitted",
            "Report.pdf",
        ),
        (
            f"[14/03/2022, 10:00:00] Alice: Report.pdf • {LRM}2 pages {LRM}document omitted",
            "media_omitted",
            "Report.pdf",
        ),
        (IOS + "Contact card omitted", "contact", None),
        (ANDROID + "Bob.vcf (file attached)", "contact", "Bob.vcf"),
        (
            IOS + "<attached: 00000035-PHOTO-2022-03-27-21-41-55.jpg>",
            "attachment",
            "00000035-PHOTO-2022-03-27-21-41-55.jpg",
        ),
        (
            IOS + "<Anhang: 00000035-PHOTO-2022-03-27-21-41-55.jpg>",
            "attachment",
            "00000035-PHOTO-2022-03-27-21-41-55.jpg",
        ),
        (
            IOS + "<adjunto: 00000035-PHOTO-2022-03-27-21-41-55.jpg>",
            "attachment",
            "00000035-PHOTO-2022-03-27-21-41-55.jpg",
        ),
        (
            IOS + "<00000035-PHOTO-2022-03-27-21-41-55.jpg eklendi>",
            "attachment",
            "00000035-PHOTO-2022-03-27-21-41-55.jpg",
        ),
        (
            f"[14/03/2022, 10:00:00] Alice: Report.pdf {LRM}<attached: 00000046-Report.pdf>",
            "attachment",
            "00000046-Report.pdf",
        ),
        (IOS + "<attached: 00000042-Bob.vcf>", "contact", "00000042-Bob.vcf"),
        (
            ANDROID + f"{LRM}IMG-20220323-WA0002.jpg (file attached)",
            "attachment",
            "IMG-20220323-WA0002.jpg",
        ),
        (ANDROID + "Holiday photo.jpg (file attached)", "attachment", "Holiday photo.jpg"),
        (
            ANDROID + "IMG-20220323-WA0002.jpg (Datei angehängt)",
            "attachment",
            "IMG-20220323-WA0002.jpg",
        ),
        (
            ANDROID + "IMG-20220323-WA0002.jpg (archivo adjunto)",
            "attachment",
            "IMG-20220323-WA0002.jpg",
        ),
        (
            ANDROID + "IMG-20220323-WA0002.jpg (fichier joint)",
            "attachment",
            "IMG-20220323-WA0002.jpg",
        ),
        (ANDROID + "IMG-20220323-WA0002.jpg (dosya ekli)", "attachment", "IMG-20220323-WA0002.jpg"),
        (
            ANDROID + "2015-08-04-PHOTO-00004762.jpg <attached>",
            "attachment",
            "2015-08-04-PHOTO-00004762.jpg",
        ),
        (ANDROID + "This message was deleted", "deleted", None),
        (ANDROID + "You deleted this message", "deleted", None),
        (IOS + "This message was deleted.", "deleted", None),
        (IOS + "You deleted this message.", "deleted", None),
        (ANDROID + "Diese Nachricht wurde gelöscht.", "deleted", None),
        (ANDROID + "Ce message a été supprimé.", "deleted", None),
        (ANDROID + "Se eliminó este mensaje.", "deleted", None),
        (ANDROID + "Dit bericht is verwijderd", "deleted", None),
        (ANDROID + "null", "view_once", None),
        (ANDROID + "location: https://maps.google.com/?q=52.08,5.10", "location", None),
        (ANDROID + "Standort: https://maps.google.com/?q=52.08,5.10", "location", None),
        (IOS + "Location: https://maps.google.com/?q=52.08,5.10", "location", None),
        (IOS + "Ubicación: https://maps.google.com/?q=52.08,5.10", "location", None),
        (ANDROID + "live location shared", "location", None),
        (ANDROID + "Live-Standort wird geteilt.", "location", None),
        (IOS + "Venue (Utrecht, NL): https://foursquare.com/v/4b0c", "location", None),
        (ANDROID + "Missed voice call", "call", None),
        (ANDROID + "Missed video call", "call", None),
        (IOS + "Verpasster Sprachanruf", "call", None),
        (IOS + "Llamada perdida", "call", None),
        (ANDROID + "*bold* _italic_ ~strike~ ```mono```", "text", None),
    ],
)
def test_it_classifies_placeholders_and_markers(
    tmp_path: Path, line: str, kind: str, attachment: str | None
) -> None:
    _, entries = text_export(tmp_path, [line])
    assert (entries[0].kind, entries[0].attachment) == (kind, attachment)
    assert line.endswith(entries[0].text)  # the body as exported, marks included


def test_it_reads_polls_and_android_venues_over_several_lines(tmp_path: Path) -> None:
    lines = [
        "14/03/2022, 10:00 - Alice: POLL:",
        "When can we meet?",
        "OPTION: Thursday (2 votes)",
        "14/03/2022, 10:01 - Bob: Stadhuis",
        "Utrecht",
        "https://foursquare.com/v/4b0c",
    ]
    _, entries = text_export(tmp_path, lines)
    assert [e.kind for e in entries] == ["poll", "location"]


@pytest.mark.parametrize(
    "marker",
    [
        "<This message was edited>",
        "<Diese Nachricht wurde bearbeitet.>",
        "<Se editó este mensaje.>",
    ],
)
def test_it_marks_edited_messages_and_keeps_the_marker(tmp_path: Path, marker: str) -> None:
    _, entries = text_export(tmp_path, [f"14/03/2022, 10:00 - Alice: Hello {marker}"])
    assert (entries[0].edited, entries[0].text, entries[0].kind) == (
        True,
        f"Hello {marker}",
        "text",
    )


def test_it_keeps_mentions_and_invisible_characters(tmp_path: Path) -> None:
    body = f"@{FSI}Bob{PDI} hello{NBSP}there{NNBSP}!"
    _, entries = text_export(tmp_path, [f"14/03/2022, 10:00 - Alice: {body}"])
    assert entries[0].text == body


@pytest.mark.parametrize(
    ("line", "when"),
    [
        ("14/03/2022, 23:59 PM - Alice: x", datetime(2022, 3, 14, 23, 59)),
        ("14/03/2022, 00:08 a. m. - Alice: x", datetime(2022, 3, 14, 0, 8)),
        ("[14/03/2022, 00:04:03 AM] Alice: x", datetime(2022, 3, 14, 0, 4, 3)),
    ],
)
def test_it_flags_impossible_12_hour_times(tmp_path: Path, line: str, when: datetime) -> None:
    _, entries = text_export(tmp_path, [line])
    assert (entries[0].local_time, entries[0].flags) == (when, ("impossible-time",))


def test_it_decides_the_order_from_backward_steps(tmp_path: Path) -> None:
    # Read day first these step back 3 times (2/1 -> 1/2 -> 3/1 ...); month first never.
    lines = [
        f"{d}, 10:00 - A: x"
        for d in ("1/2/22", "1/3/22", "2/1/22", "2/3/22", "3/1/22", "3/2/22", "4/1/22")
    ]
    detected, _ = text_export(tmp_path, lines, "mdy")
    assert detected.date_order == "mdy"
    assert "mdy steps back 0" in detected.order_evidence


def test_it_leaves_the_order_open_when_the_steps_do_not_clearly_differ(tmp_path: Path) -> None:
    lines = ["1/2/22, 10:00 - A: x", "2/1/22, 10:00 - A: y"]
    detected, _ = text_export(tmp_path, lines, "dmy")
    assert detected.date_order is None
    assert "not clearly fewer" in detected.order_evidence


def test_it_rejects_a_reading_with_an_impossible_date(tmp_path: Path) -> None:
    detected, _ = text_export(tmp_path, ["2/3/22, 10:00 - A: x", "1/31/22, 10:00 - A: y"])
    assert detected.date_order == "mdy" and "cannot be a month" in detected.order_evidence
    path = tmp_path / "both.txt"
    path.write_text("30/1/22, 10:00 - A: x\n31/2/22, 10:00 - A: y\n1/1/22, 10:00 - A: z\n")
    with ExportFile.open(path, "both.txt") as export:
        detected = detect(export)
    assert detected.date_order is None and "no reading" in detected.order_evidence


def test_it_refuses_a_date_impossible_in_the_chosen_order(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="impossible") as refused:
        text_export(tmp_path, ["1/2/22, 10:00 - A: x", "31/2/22, 10:00 - A: y"], "dmy")
    assert refused.value.line == 2


def test_it_reads_crlf_mixed_with_lf_and_a_missing_final_newline(tmp_path: Path) -> None:
    text = "16/03/2022, 15:20 - Alice: Hi\r\nthere\n16/03/2022, 15:21 - Bob: a\rb"
    _, entries = text_export(tmp_path, text)
    assert [e.text for e in entries] == ["Hi\nthere", "a\rb"]
