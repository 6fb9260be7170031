"""Catalogue sources: CSV, JSONL and Parquet read record by record, with the line
(row) each record starts on and parse errors as records, not exceptions."""

from __future__ import annotations

import json

import pytest

from samestyle.loaders.sources import Source, detect_format
from samestyle.errors import ConfigError


def _records(path, fmt=None):
    return list(Source(path, fmt))


def test_csv_lines_count_from_the_header_and_survive_multiline_fields(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text('id,title,image\n1,"Red, striped\ntee",a.jpg\n\n2,Blue tee,b.jpg\n3,short\n4,"x ""quoted""",\n')
    recs = _records(p)
    assert [(r.line, r.fields and r.fields["id"]) for r in recs] == [(2, "1"), (5, "2"), (6, None), (7, "4")]
    assert recs[0].fields["title"] == "Red, striped\ntee"
    assert recs[2].error == ("record", "has 2 fields, the header has 3")
    assert recs[3].fields["title"] == 'x "quoted"' and recs[3].fields["image"] == ""


def test_csv_invalid_utf8_is_carried_to_the_field(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"id,title\n1,caf\xe9 tee\n2,ok\n")
    recs = _records(p)
    assert len(recs) == 2 and recs[1].fields["title"] == "ok"
    assert "\udce9" in recs[0].fields["title"]  # surrogate-escaped byte; the transform rejects it by field


def test_csv_header_must_be_utf8_and_present(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ConfigError, match="no header"):
        Source(tmp_path / "empty.csv")
    (tmp_path / "bad.csv").write_bytes(b"id,t\xffitle\n1,x\n")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        Source(tmp_path / "bad.csv")


def test_jsonl_bad_lines_become_error_records(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_bytes(b'{"id": "a", "title": "x"}\n\n{"id": "b", \n[1, 2]\n{"id": 7, "title": "caf\xe9"}\n')
    recs = _records(p)
    assert [r.line for r in recs] == [1, 3, 4, 5]
    assert recs[0].fields == {"id": "a", "title": "x"}
    assert recs[1].fields is None and recs[1].error[1].startswith("invalid JSON")
    assert recs[2].error == ("record", "expected a JSON object, got list")
    assert recs[3].fields["id"] == 7 and "\udce9" in recs[3].fields["title"]


def test_parquet_rows_and_binary_photos(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "c.parquet"
    n = 1200  # more than one PARQUET_BATCH
    pq.write_table(pa.table({"id": [f"p{i}" for i in range(n)], "title": ["t"] * n,
                             "image": [bytes([i % 256]) * 3 for i in range(n)]}), p, row_group_size=500)
    src = Source(p)
    assert src.columns == ["id", "title", "image"] and src.estimate_total() == n
    recs = list(src)
    assert [r.line for r in recs] == list(range(1, n + 1))
    assert recs[1000].fields == {"id": "p1000", "title": "t", "image": bytes([1000 % 256]) * 3}


def test_sources_stream_instead_of_loading(tmp_path):
    p = tmp_path / "c.jsonl"
    with p.open("w") as f:
        for i in range(5000):
            f.write(json.dumps({"id": str(i)}) + "\n")
    it = iter(Source(p))
    assert next(it).fields == {"id": "0"}
    # Records are produced lazily: what is written after the first read still shows up.
    with p.open("a") as f:
        f.write(json.dumps({"id": "late"}) + "\n")
    assert [r.fields["id"] for r in it][-1] == "late"


@pytest.mark.parametrize("name,fmt", [("a.csv", "csv"), ("a.tsv", "csv"), ("a.jsonl", "jsonl"),
                                      ("a.ndjson", "jsonl"), ("a.parquet", "parquet"), ("a.v2.csv", "csv")])
def test_format_from_the_name(tmp_path, name, fmt):
    assert detect_format(tmp_path / name) == fmt


def test_unknown_format_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError) as err:
        detect_format(tmp_path / "a.xlsx")
    assert "--format" in err.value.fix


def test_estimate_counts_lines(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("id\n1\n2\n3")  # no final newline
    assert Source(p).estimate_total() == 3


# -- CSV as real tools write it (#12) -------------------------------------------------------


def test_unclosed_quote_is_one_bad_record_and_the_rows_after_it_load(tmp_path):
    # 100 rows, a quote opened at row 95 and never closed: row 95 is reported on its
    # line, rows 96-100 are read as records of their own (before: folded into row 95).
    rows = [f"{i},Tee {i},{i}.jpg" for i in range(1, 101)]
    rows[94] = '95,"Tee 95,95.jpg'
    p = tmp_path / "c.csv"
    p.write_text("id,title,image\n" + "\n".join(rows) + "\n")
    recs = _records(p)
    good = [r.fields["id"] for r in recs if r.fields is not None]
    bad = [r for r in recs if r.fields is None]
    assert good == [str(i) for i in range(1, 101) if i != 95]
    assert [(r.line, r.error[0]) for r in bad] == [(96, "record")]  # line 96: the header is line 1
    assert "unclosed quote" in bad[0].error[1] and "line 96" in bad[0].error[1]


def test_unclosed_quote_closed_by_a_later_stray_quote_loses_no_line(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text('id,title,image\n1,"Tee,a.jpg\n2,Tee,b.jpg\n3,Tee 5",c.jpg\n4,Tee,d.jpg\n')
    recs = _records(p)
    # The field count comes out right by chance; the record is dead-lettered with its
    # line span, not loaded with rows 2 and 3 folded into its title.
    assert [(r.line, r.fields["id"] if r.fields else None) for r in recs] == [(2, None), (5, "4")]
    assert "lines 2-4" in recs[0].error[1] and "unclosed quote" in recs[0].error[1]


def test_multiline_quoted_fields_still_load(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text('id,title,image\n1,"two\nlines",a.jpg\n2,"three\n\nlines",b.jpg\n3,x,c.jpg\n')
    recs = _records(p)
    assert [(r.line, r.fields["title"]) for r in recs] == [(2, "two\nlines"), (4, "three\n\nlines"), (7, "x")]


def test_utf8_bom_is_dropped(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes(b"\xef\xbb\xbfid,title\n1,caf\xc3\xa9\n")
    src = Source(p)
    assert src.columns == ["id", "title"]
    assert [r.fields for r in src] == [{"id": "1", "title": "café"}]
    j = tmp_path / "c.jsonl"
    j.write_bytes(b'\xef\xbb\xbf{"id": "1"}\n')
    assert [r.fields for r in Source(j)] == [{"id": "1"}]


@pytest.mark.parametrize("delim", [";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header(tmp_path, delim):
    p = tmp_path / "c.csv"
    p.write_text(delim.join(["id", "title", "image"]) + "\n" + delim.join(["1", "Tee, red", "a.jpg"]) + "\n")
    src = Source(p)
    assert src.delimiter == delim and src.columns == ["id", "title", "image"]
    assert [r.fields["title"] for r in src] == ["Tee, red"]


def test_delimiter_given_wins_and_is_checked(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("id;title,x\n1;a,b\n")
    assert Source(p, delimiter=",").columns == ["id;title", "x"]
    assert Source(p, delimiter=";").columns == ["id", "title,x"]
    assert Source(p, delimiter="tab").delimiter == "\t"
    with pytest.raises(ConfigError, match="one character"):
        Source(p, delimiter=";;")


def test_encodings(tmp_path):
    p = tmp_path / "c.csv"
    p.write_bytes("id,title\n1,café\n".encode("cp1252"))
    assert "\udce9" in next(iter(Source(p))).fields["title"]  # read as UTF-8: the field is rejected by name
    assert next(iter(Source(p, encoding="cp1252"))).fields["title"] == "café"
    u = tmp_path / "u.csv"  # Excel's "Unicode text": UTF-16 with a BOM, tab-separated
    u.write_bytes("id\ttitle\n1\tcafé\n".encode("utf-16"))
    src = Source(u)
    assert src.encoding == "utf-16" and src.delimiter == "\t"
    assert [r.fields for r in src] == [{"id": "1", "title": "café"}]
    with pytest.raises(ConfigError, match="unknown encoding"):
        Source(p, encoding="klingon")
    j = tmp_path / "c.jsonl"
    j.write_text('{"id": 1}\n')
    with pytest.raises(ConfigError, match="UTF-8 by definition"):
        Source(j, encoding="latin-1")
