from __future__ import annotations

from pathlib import Path

import pytest

from clubjapon_ops.contacts import normalise
from clubjapon_ops.crm.csvfile import CsvSource
from clubjapon_ops.errors import SourceError

Rows = list[dict[str, object]]


def read_all(path: Path, page_size: int = 500) -> tuple[Rows, list[tuple[str, str]]]:
    records: list[dict[str, object]] = []
    rejected: list[tuple[str, str]] = []
    for page in CsvSource(path, page_size).pages(None, full=True):
        records += [vars(r) for r in page.records]
        rejected += page.rejected
    return records, rejected


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"], ids=["no-bom", "bom"])
@pytest.mark.parametrize("delimiter", [";", ","])
def test_bom_and_delimiters(tmp_path: Path, encoding: str, delimiter: str) -> None:
    text = delimiter.join(["E-mail", "Prénom", "Nom", "Société", "Langue", "Poste"]) + "\n"
    text += delimiter.join(["yui@example.com", "結衣", "鈴木", '"Sakura, SAS"', "日本語",
                            "Juriste"]) + "\n"
    path = tmp_path / "export.csv"
    path.write_text(text, encoding=encoding)
    records, rejected = read_all(path)
    assert rejected == []
    (record,) = records
    assert record["email"] == "yui@example.com"
    assert record["first_name"] == "結衣"
    assert record["company"] == "Sakura, SAS"
    assert record["attributes"] == {"Poste": "Juriste"}
    assert normalise(CsvSource(path).pages(None, full=True).__next__().records[0]).language == "ja"


@pytest.mark.parametrize(
    "header",
    ["Email,first_name,last_name", "Courriel,Prénom,Nom", "E-mail Address,First Name,Last Name",
     "EMAIL,FIRSTNAME,LASTNAME", "adresse e-mail,prenom,nom de famille"],
)
def test_column_name_variants(tmp_path: Path, header: str) -> None:
    path = tmp_path / "export.csv"
    path.write_text(f"{header}\nkenji@example.com,Kenji,Yamamoto\n", encoding="utf-8")
    (record,), _ = read_all(path)
    assert (record["email"], record["first_name"], record["last_name"]) == (
        "kenji@example.com", "Kenji", "Yamamoto")


def test_quoted_newlines_empty_rows_and_extra_fields(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        'email;company\n'
        'a@example.com;"Takumi\nR&D"\n'
        ';\n'
        '\n'
        'b@example.com;B;unexpected\n'
        'c@example.com\n',
        encoding="utf-8",
    )
    records, rejected = read_all(path)
    assert [r["email"] for r in records] == ["a@example.com", "c@example.com"]
    assert records[0]["company"] == "Takumi\nR&D"
    assert rejected == [("line 6", "more fields than the header: 3 > 2")]
    assert [r["ref"] for r in records] == ["line 2", "line 7"]


def test_pages_split_the_file(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("email\n" + "".join(f"u{i}@example.com\n" for i in range(25)), "utf-8")
    sizes = [len(p.records) for p in CsvSource(path, page_size=10).pages(None, full=True)]
    assert sizes == [10, 10, 5]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "CSV export not found"),
        ("", "is empty"),
        ("name;company\nA;B\n", "has no email column"),
        # UTF-8, then a byte that is not: not guessed as another encoding (no mojibake).
        (b"email,nom\nzoe@x,Zo\xc3\xa9\nb@x,\xff\n", r"is not UTF-8 text at byte 25 \(line 3\)"),
        (b"email," + b"x" * (1 << 21) + b"\n", "header row is longer than 1048576"),
    ],
    ids=["missing", "empty", "no-email-column", "not-utf8", "huge-header"],
)
def test_unreadable_exports_stop_with_a_clear_error(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "export.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        read_all(path)


def test_a_field_over_the_limit_skips_its_record_only(tmp_path: Path) -> None:
    # Python's csv refuses a field over 128 KiB; one such record must not cost the others.
    path = tmp_path / "export.csv"
    huge = "x" * (200 * 1024)
    path.write_text(
        "email,company\n"
        "a@example.com,A\n"
        f"b@example.com,{huge}\n"
        "c@example.com,C\n",
        encoding="utf-8",
    )
    records, rejected = read_all(path)
    assert [r["email"] for r in records] == ["a@example.com", "c@example.com"]
    assert [r["ref"] for r in records] == ["line 2", "line 4"]
    assert rejected == [("line 3", "field longer than 131072 characters")]


def test_a_quoted_field_over_the_limit_spanning_lines_is_skipped_whole(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    # Lines that would read as records if the skip resumed inside the quoted field.
    huge = "".join(f"z{i}@example.com,not a record\n" for i in range(8000))
    path.write_text(
        "email,company\n"
        f'b@example.com,"{huge}"\n'
        'c@example.com,"C ""quoted"""\n',
        encoding="utf-8",
    )
    records, rejected = read_all(path)
    assert [(r["email"], r["company"]) for r in records] == [("c@example.com", 'C "quoted"')]
    assert [r["ref"] for r in records] == [f"line {8000 + 3}"]
    assert rejected == [("line 2", "field longer than 131072 characters")]


def test_a_huge_line_is_skipped_without_holding_it(tmp_path: Path) -> None:
    # Many fields under the field limit, a line far over any sane record: skipped, not read whole.
    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8") as out:
        out.write("email,company\na@example.com,A\nb@example.com")
        chunk = ",y" * (512 * 1024)
        for _ in range(8):
            out.write(chunk)
        out.write("\nc@example.com,C\n")
    records, rejected = read_all(path)
    assert [r["email"] for r in records] == ["a@example.com", "c@example.com"]
    assert rejected == [("line 3", "record longer than 1048576 characters")]
    assert [r["ref"] for r in records] == ["line 2", "line 4"]


def test_not_utf8_names_the_real_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    head = "email,company\n" + "".join(f"user{i}@example.com,Société {i}\n" for i in range(4000))
    data = head.encode("utf-8")
    path.write_bytes(data + b"bad@example.com,\xff\n")
    offset = len(data) + len(b"bad@example.com,")
    assert offset > 100_000
    with pytest.raises(SourceError, match=rf"byte {offset} \(line 4002\)"):
        read_all(path)
