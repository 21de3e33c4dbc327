"""Write the bad-input corpus: files a user might hand pcsms that are wrong, odd or hostile.

    python scripts/make_bad_inputs.py [--out tests/data/bad_inputs]

The files are committed; this script says how each was made, and makes them again the same
(no randomness, no timestamps). ``tests/test_bad_inputs.py`` runs each through the calling-list
import, the DNC import and ``config apply``, and through the admin's upload page.
"""

# The corpus reads best one file a line, however long the line.
# ruff: noqa: E501

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import openpyxl

HEADER = "ExternalId,PhoneNumber,FirstName,TimeZone\n"
GOOD = "A1,(312) 555-0101,Ada,America/Chicago\nA2,312-555-0102,Grace,America/Chicago\n"


def xlsx_bytes(sheets: dict[str, list[list]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return _fixed_times(buffer.getvalue())


def _entry(name: str) -> zipfile.ZipInfo:
    """A zip entry dated 1980-01-01, deflated (a ZipInfo is stored uncompressed by default)."""
    info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info


def _fixed_times(data: bytes) -> bytes:
    """The same bytes on every run: zip entries dated 1980-01-01, docProps without a clock."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = b'<?xml version="1.0"?><cp:coreProperties xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"/>'  # noqa: E501
            target.writestr(_entry(info.filename), content)
    return out.getvalue()


def formula_xlsx() -> bytes:
    """Formulas without saved results, as a program that never calculates writes them."""
    data = xlsx_bytes({"Sheet1": [["ExternalId", "PhoneNumber"], ["F1", "=A1&A1"], ["F2", "=1+1"]]})
    return data  # openpyxl writes <f> without <v>: no saved result


def zip_bomb_xlsx() -> bytes:
    """A workbook whose sheet inflates to ~400 MB of one cell's text from ~400 KB."""
    base = zipfile.ZipFile(io.BytesIO(xlsx_bytes({"Sheet1": [["ExternalId", "PhoneNumber"]]})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in base.infolist():
            content = base.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                head, _, tail = content.partition(b"</sheetData>")
                filler = b"A" * (400 << 20)
                row = (
                    b'<row r="2"><c r="A2" t="inlineStr"><is><t>' + filler + b"</t></is></c></row>"
                )
                content = head + row + b"</sheetData>" + tail
            target.writestr(_entry(info.filename), content)
    return out.getvalue()


def corpus() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    add = files.__setitem__
    add("empty.csv", b"")
    add("header_only.csv", HEADER.encode())
    add("blank_lines_only.csv", b"\n\n \n\t\n")
    add("binary_junk.csv", bytes(range(256)) * 40)
    add("nul_bytes.csv", (HEADER + "A1,3125550101\x00,Ada,\n").encode())
    add("utf16_bom.csv", (HEADER + GOOD).encode("utf-16"))
    add("latin1.csv", (HEADER + "A1,3125550101,Zoë,America/Chicago\n").encode("latin-1"))
    add("cr_only_line_ends.csv", (HEADER + GOOD).replace("\n", "\r").encode())
    add("crlf_line_ends.csv", (HEADER + GOOD).replace("\n", "\r\n").encode())
    add("utf8_bom.csv", ("\ufeff" + HEADER + GOOD).encode())
    wide = ",".join(f"C{i}" for i in range(10_000))
    add("ten_thousand_columns.csv", f"ExternalId,PhoneNumber,{wide}\nA1,3125550101\n".encode())
    add(
        "ten_thousand_cells_in_a_row.csv",
        (HEADER + "A1,3125550101,Ada," + "x," * 10_000 + "\n").encode(),
    )
    add("one_megabyte_cell.csv", (HEADER + "A1,3125550101," + "x" * (1 << 20) + ",\n").encode())
    add(
        "unclosed_quote.csv",
        (HEADER + 'A1,3125550101,"Ada,America/Chicago\nA2,3125550102,Grace,\n').encode(),
    )
    add("stray_quote.csv", (HEADER + 'A1,3125550101,Ad"a,America/Chicago\n').encode())
    add("duplicate_headers.csv", b"ExternalId,PhoneNumber,PhoneNumber\nA1,3125550101,3125550102\n")
    add("no_phone_column.csv", b"ExternalId,FirstName\nA1,Ada\n")
    add("no_id_column.csv", b"PhoneNumber,FirstName\n3125550101,Ada\n")
    add("semicolons.csv", b"ExternalId;PhoneNumber;FirstName\nA1;3125550101;Ada\n")
    add("scientific_numbers.csv", (HEADER + "A1,1.2E+10,Ada,\nA2,3.12555E+09,Grace,\n").encode())
    add(
        "non_us_numbers.csv",
        (
            HEADER
            + "A1,+44 20 7946 0958,Ada,\nA2,+33 1 23 45 67 89,Grace,\nA3,+1 312 555 0101,Alan,\n"
        ).encode(),
    )
    add(
        "emoji.csv",
        (HEADER + "A1,3125550101,Ada 🎉,America/Chicago\nA2,📞3125550102,Grace,\n").encode(),
    )
    add(
        "control_characters.csv",
        (HEADER + "A1,3125550101,Ada\x07\x1b[31m,America/Chicago\n").encode(),
    )
    add("formula_injection.csv", (HEADER + 'A1,3125550101,"=HYPERLINK(""http://x"")",\n').encode())
    add("repeated_ids.csv", (HEADER + "A1,3125550101,Ada,\nA1,3125550102,Grace,\n").encode())
    add(
        "bad_time_zones.csv",
        (HEADER + "A1,3125550101,Ada,Mars/Olympus\nA2,3125550102,Grace,EST5\n").encode(),
    )
    add("tab_separated_named_csv.csv", b"ExternalId\tPhoneNumber\nA1\t3125550101\n")
    add("list.txt", (HEADER + GOOD).replace(",", "\t").encode())
    add("no_extension", (HEADER + GOOD).encode())
    add("old_excel.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    add("document.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    add("old_excel_named_xlsx.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    add("csv_named_xlsx.xlsx", (HEADER + GOOD).encode())
    add(
        "xlsx_named_csv.csv",
        xlsx_bytes({"Sheet1": [["ExternalId", "PhoneNumber"], ["A1", "3125550101"]]}),
    )
    good = xlsx_bytes(
        {"Sheet1": [["ExternalId", "PhoneNumber"], ["A1", 3125550101], ["A2", "bad"]]}
    )
    add("truncated.xlsx", good[: len(good) // 2])
    add(
        "two_sheets.xlsx",
        xlsx_bytes(
            {
                "Patients": [["ExternalId", "PhoneNumber"], ["A1", 3125550101]],
                "Notes": [["x"], ["y"]],
            }
        ),
    )
    add("empty_sheet.xlsx", xlsx_bytes({"Sheet1": []}))
    add("formulas_without_results.xlsx", formula_xlsx())
    add(
        "numbers_as_floats.xlsx",
        xlsx_bytes({"Sheet1": [["ExternalId", "PhoneNumber"], [1.0, 3125550101.0], [2.5, 1.2e10]]}),
    )
    add("zip_bomb.xlsx", zip_bomb_xlsx())
    # config apply (TOML)
    add("config_empty.toml", b"")
    add("config_not_toml.toml", b"[[business_units]\nname = 'x\n")
    add("config_binary.toml", bytes(range(256)))
    add("config_utf16.toml", '[[business_units]]\nname = "Acme"\n'.encode("utf-16"))
    add("config_no_units.toml", b'title = "nothing here"\n')
    add("config_unknown_field.toml", b'[[business_units]]\nname = "Acme"\ncolour = "blue"\n')
    add(
        "config_wrong_types.toml",
        b'[[business_units]]\nname = 42\nallowed_time_zones = "America/Chicago"\n',
    )
    add("config_with_bom.toml", '\ufeff[[business_units]]\nname = "Acme"\n'.encode())
    add(
        "config_unknown_zone.toml",
        b'[[business_units]]\nname = "Acme"\nallowed_time_zones = ["Mars/Olympus"]\n',
    )
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent / "tests" / "data" / "bad_inputs"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in corpus().items():
        (args.out / name).write_bytes(data)
    print(f"{len(corpus())} files in {args.out}")


if __name__ == "__main__":
    main()
