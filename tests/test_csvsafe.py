import csv
import io

from ccm.csvsafe import csv_lines, safe_cell


def test_formula_cells_are_written_as_text():
    for hostile in ('=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"):
        assert safe_cell(hostile) == "'" + hostile


def test_numbers_and_plain_text_are_kept():
    assert [safe_cell(v) for v in (-3, 2.5, True, None, "ann@example.com")] == [
        "-3",
        "2.5",
        "true",
        "",
        "ann@example.com",
    ]


def test_csv_lines_read_back_as_the_rows():
    text = "".join(csv_lines(["name", "note"], [["Ann", "=1+1"], ["Bo, Jr.", 'say "hi"']]))
    assert list(csv.reader(io.StringIO(text))) == [["name", "note"], ["Ann", "'=1+1"], ["Bo, Jr.", 'say "hi"']]
