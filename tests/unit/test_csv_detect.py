"""CSV exports as people make them: Excel and LibreOffice, cp1252, Latin-1, tabs, one column.

Each file is written byte for byte as the program writes it (CRLF, quoting only the fields
that hold the delimiter, a quote or a line break), and each test checks the stored names.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import pytest

from clubjapon_ops import cli
from clubjapon_ops.crm.csvfile import CsvSource
from clubjapon_ops.errors import SourceError

Rows = list[dict[str, object]]

FRENCH = [
    ("helene.lefevre@example.fr", "Hélène", "Lefèvre", "Crêperie « Chez Œdipe »; Lille"),
    ("francois@example.fr", "François", "Cœur", "Garçon & Fils"),
    ("zoe@example.fr", "Zoé", "Bœuf", 'Le "Manga" Café'),
]
JAPANESE = [
    ("yui@example.jp", "結衣", "鈴木", "株式会社さくら\t東京"),
    ("kenji@example.jp", "健二", "山本", "日本語学校"),
]


def excel_row(fields: tuple[str, ...] | list[str], sep: str) -> str:
    """One line as Excel writes it: quote a field only when it needs it, CRLF at the end."""
    out = []
    for f in fields:
        if sep in f or '"' in f or "\n" in f:
            f = '"' + f.replace('"', '""') + '"'
        out.append(f)
    return sep.join(out) + "\r\n"


def export(path: Path, rows: list[tuple[str, str, str, str]], sep: str, encoding: str,
           header: tuple[str, ...] = ("E-mail", "Prénom", "Nom", "Société")) -> Path:
    text = excel_row(header, sep) + "".join(excel_row(r, sep) for r in rows)
    path.write_bytes(text.encode(encoding))
    return path


def read(path: Path) -> tuple[CsvSource, Rows]:
    source = CsvSource(path)
    records: Rows = []
    for page in source.pages(None, full=True):
        assert page.rejected == []
        records += [vars(r) for r in page.records]
    return source, records


def names(records: Rows) -> list[tuple[object, ...]]:
    return [(r["email"], r["first_name"], r["last_name"], r["company"]) for r in records]


def test_excel_cp1252_semicolon_export(tmp_path: Path) -> None:
    # French Excel's "CSV (séparateur: point-virgule)": cp1252, œ and « » included.
    path = export(tmp_path / "contacts.csv", FRENCH, ";", "cp1252")
    source, records = read(path)
    assert names(records) == FRENCH
    assert source.detected == "read as cp1252, ';'-separated"


def test_excel_latin1_tab_separated_export(tmp_path: Path) -> None:
    # "Texte (séparateur: tabulation)" from an older Excel, in ISO-8859-1 (no œ there).
    rows = [(e, f, n.replace("œ", "oe"), c.replace("Œ", "OE")) for e, f, n, c in FRENCH]
    path = export(tmp_path / "contacts.txt", rows, "\t", "latin-1")
    source, records = read(path)
    assert names(records) == rows
    # cp1252 is Latin-1 plus letters (œ, €) where Latin-1 has control codes: the same text.
    assert source.detected == "read as cp1252, tab-separated"


def test_a_few_accents_are_not_guessed_as_central_european(tmp_path: Path) -> None:
    # With two accented letters, a detector alone says cp1250: Lefčvre. Not here.
    path = export(tmp_path / "contacts.csv",
                  [("a@example.fr", "François", "Lefèvre", "")], ";", "cp1252")
    _, records = read(path)
    assert names(records) == [("a@example.fr", "François", "Lefèvre", "")]


def test_libreoffice_utf8_bom_tab_separated_japanese(tmp_path: Path) -> None:
    path = export(tmp_path / "contacts.tsv", JAPANESE, "\t", "utf-8-sig")
    source, records = read(path)
    assert names(records) == JAPANESE
    assert source.detected == "read as UTF-8 with BOM, tab-separated"


def test_utf8_comma_separated_with_the_delimiter_quoted(tmp_path: Path) -> None:
    rows = [(e, f, n, c.replace("\t", ", ")) for e, f, n, c in JAPANESE]
    path = export(tmp_path / "contacts.csv", rows, ",", "utf-8")
    source, records = read(path)
    assert names(records) == rows
    assert source.detected == "read as UTF-8, ','-separated"


def test_japanese_excel_shift_jis_export(tmp_path: Path) -> None:
    rows = [(e, f, n, c.replace("\t", "、")) for e, f, n, c in JAPANESE] * 3
    path = export(tmp_path / "contacts.csv", rows, ",", "cp932",
                  header=("Email", "First name", "Last name", "Company"))
    source, records = read(path)
    assert names(records) == rows
    assert source.detected == "read as cp932, ','-separated"


def test_a_single_column_of_emails(tmp_path: Path) -> None:
    path = tmp_path / "emails.csv"
    path.write_bytes(b"Email\r\na@example.fr\r\nb@example.fr\r\n")
    source, records = read(path)
    assert [r["email"] for r in records] == ["a@example.fr", "b@example.fr"]
    assert source.detected == "read as UTF-8, one column"


def test_a_semicolon_in_a_comma_separated_export_does_not_fool_it(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(b"email,tags\r\n" + b"".join(
        f"u{i}@example.fr,a;b;c\r\n".encode() for i in range(20)))
    source, records = read(path)
    assert records[0]["email"] == "u0@example.fr"
    assert records[0]["attributes"] == {"tags": "a;b;c"}
    assert source.detected == "read as UTF-8, ','-separated"


def test_an_xlsx_given_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("[Content_Types].xml", "<Types/>")
        book.writestr("xl/workbook.xml", "<workbook/>")
    with pytest.raises(SourceError, match="is an Excel workbook, export it as CSV"):
        read(path)


def test_an_old_xls_given_as_csv(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(bytes.fromhex("d0cf11e0a1b11ae1") + bytes(2000))
    with pytest.raises(SourceError, match="is an Excel workbook, export it as CSV"):
        read(path)


def test_a_binary_file(tmp_path: Path) -> None:
    # Seeded: about one random file in fifteen starts with bytes that are valid UTF-8, and
    # was read as "UTF-8 with a bad byte" (a flaky test once os.urandom found one).
    path = tmp_path / "contacts.csv"
    for seed in range(200):
        path.write_bytes(b"email\n" + random.Random(seed).randbytes(4000))
        with pytest.raises(SourceError, match="is not text in any encoding"):
            read(path)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_is_text(tmp_path: Path, codec: str) -> None:
    path = export(tmp_path / "contacts.csv", FRENCH, "\t", codec)
    _, records = read(path)
    assert names(records) == FRENCH


def test_utf8_start_and_a_cp1252_byte_past_the_sample_stops(tmp_path: Path) -> None:
    # The sample reads as UTF-8; a later cp1252 'é' must not be stored as mojibake.
    head = "email;nom\r\n" + "".join(f"u{i}@example.fr;Zoé {i}\r\n" for i in range(8000))
    data = head.encode("utf-8")
    path = tmp_path / "contacts.csv"
    path.write_bytes(data + "late@example.fr;Hélène\r\n".encode("cp1252"))
    offset = len(data) + len(b"late@example.fr;H")
    with pytest.raises(SourceError, match=rf"not UTF-8 text at byte {offset} \(line 8002\)"):
        read(path)


def test_utf8_and_cp1252_mixed_in_the_sample_stops(tmp_path: Path) -> None:
    # Decoding this as cp1252 would store 'ZoÃ©': refuse, naming the byte that is not UTF-8.
    data = "email;nom\r\na@example.fr;Zoé\r\n".encode()
    path = tmp_path / "contacts.csv"
    path.write_bytes(data + "b@example.fr;Hélène\r\n".encode("cp1252"))
    offset = len(data) + len(b"b@example.fr;H")
    with pytest.raises(SourceError, match=rf"not UTF-8 text at byte {offset} \(line 3\)"):
        read(path)


def test_cp1252_start_and_a_byte_it_lacks_past_the_sample_stops(tmp_path: Path) -> None:
    head = "email;nom\r\n" + "".join(f"u{i}@example.fr;Zoé {i}\r\n" for i in range(8000))
    data = head.encode("cp1252")
    path = tmp_path / "contacts.csv"
    path.write_bytes(data + b"late@example.fr;\x81\r\n")  # 0x81: no character in cp1252
    offset = len(data) + len(b"late@example.fr;")
    with pytest.raises(SourceError, match=rf"not cp1252 text at byte {offset} \(line 8002\)"):
        read(path)


def test_sync_summary_says_what_was_detected(
    root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = export(root / "contacts.csv", FRENCH, ";", "cp1252")
    monkeypatch.setenv("CLUBJAPON_HOME", str(root))
    monkeypatch.setenv("CLUBJAPON_CSV_PATH", str(path))
    monkeypatch.setitem(cli._state, "app", cli.App())
    with pytest.raises(SystemExit) as info:
        cli.main(["--log-text", "-q", "sync"])
    assert info.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Synced from csv (full): 3 fetched, 3 created")
    assert f"  {path.name} read as cp1252, ';'-separated" in out


def test_cp1252_start_and_utf8_past_the_sample_stops(tmp_path: Path) -> None:
    # cp1252 decodes any byte: read that way, a later UTF-8 'Hélène' would be 'HÃ©lÃ¨ne'.
    head = "email;nom\r\n" + "".join(f"u{i}@example.fr;Zoé {i}\r\n" for i in range(8000))
    path = tmp_path / "contacts.csv"
    path.write_bytes(head.encode("cp1252") + "late@example.fr;Hélène\r\n".encode())
    source = CsvSource(path)
    with pytest.raises(SourceError, match="mixes encodings: line 8002 holds UTF-8 text among "
                                          "cp1252 text"):
        for page in source.pages(None, full=True):
            assert all("Ã" not in str(r.last_name) for r in page.records)


ASCII_HEAD = "email;nom\r\n" + "".join(f"u{i}@example.fr;Martin {i}\r\n" for i in range(8000))


def test_an_ascii_start_and_cp1252_past_the_sample_reads_as_cp1252(tmp_path: Path) -> None:
    # Sorted by name, an Excel export may hold 64 KiB of plain ASCII before its first accent.
    path = tmp_path / "contacts.csv"
    path.write_bytes(ASCII_HEAD.encode("cp1252")
                     + "late@example.fr;Hélène Lefèvre\r\nzoe@example.fr;Zoé\r\n".encode("cp1252"))
    source, records = read(path)
    assert len(records) == 8002
    assert [r["last_name"] for r in records[-2:]] == ["Hélène Lefèvre", "Zoé"]
    assert source.detected == "read as cp1252, ';'-separated"


def test_an_ascii_start_and_utf8_past_the_sample_reads_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes((ASCII_HEAD + "late@example.fr;Hélène\r\n").encode())
    source, records = read(path)
    assert records[-1]["last_name"] == "Hélène"
    assert source.detected == "read as UTF-8, ';'-separated"


@pytest.mark.parametrize("tail", [
    # cp1252, then UTF-8: the two mixed; a lone name the detector takes for Big5.
    "a@example.fr;Hélène\r\n".encode("cp1252") + "b@example.fr;Zoé\r\n".encode(),
    "a@example.fr;Hélène\r\n".encode("cp1252"),
])
def test_an_ascii_start_and_too_little_to_tell_stops_rather_than_guess(
    tmp_path: Path, tail: bytes
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_bytes(ASCII_HEAD.encode() + tail)
    offset = len(ASCII_HEAD) + len(b"a@example.fr;H")
    with pytest.raises(SourceError, match=rf"not UTF-8 text at byte {offset} \(line 8002\)"):
        read(path)
