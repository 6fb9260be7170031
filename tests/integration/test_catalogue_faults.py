"""Catalogues as people really have them (#12): a misspelt column, an unclosed quote,
a UTF-8 BOM and a semicolon-separated export, each through `samestyle ingest` against
a real Milvus Lite and the real ONNX encoder. Products are title-only: nothing here is
about photos, and text is what makes the run cheap."""

from __future__ import annotations

import json

from click.testing import CliRunner

from samestyle import contract as C
from samestyle.config import Settings
from samestyle.store import Store
from tests.fixtures.milvus import subprocess_env


def _ingest(path, data_dir, *extra):
    from samestyle.cli.main import cli

    args = ["ingest", str(path), "--encoder", "onnx", "--json", "--no-progress", *extra]
    return CliRunner().invoke(cli, args, env=subprocess_env(Settings(data_dir=data_dir)), catch_exceptions=False)


def _titles(data_dir, ids):
    with Store.open(Settings(data_dir=data_dir)) as store:
        got = store.fetch(C.COLLECTION_ALIAS, ids, ["title", "category"])
        return {k: (v["title"], v["category"]) for k, v in got.items()}, store.count(C.COLLECTION_ALIAS)


def test_misspelt_column_fails_before_anything_is_written(tmp_path):
    data = tmp_path / "data"
    cat = tmp_path / "cat.csv"
    cat.write_text("id,name,category\n" + "".join(f"p{i},Blue tee {i},Tshirts\n" for i in range(5)))
    res = _ingest(cat, data, "--title-col", "name", "--category-col", "category")
    assert res.exit_code == 0, res.output
    before = _titles(data, [f"p{i}" for i in range(5)])

    # The case: --title-col nmae used to exit 0 and blank every stored title.
    res = _ingest(cat, data, "--title-col", "nmae", "--category-col", "category")
    assert res.exit_code == 2, res.output
    err = json.loads(res.stdout)["error"]
    assert "[nmae]" in err["message"] and "['id', 'name', 'category']" in err["message"]
    assert "did you mean [name]?" in err["message"] and "--title-col" in err["fix"]
    assert _titles(data, [f"p{i}" for i in range(5)]) == before

    # Leaving --category-col out no longer assumes Myntra's articleType silently.
    res = _ingest(cat, data, "--title-col", "name")
    assert res.exit_code == 0, res.output
    notes = json.loads(res.stdout)["notes"]
    assert any("no category column [articleType]" in n for n in notes), notes


def test_unclosed_quote_dead_letters_its_line_and_loads_the_rest(tmp_path):
    data, dead = tmp_path / "data", tmp_path / "dead.jsonl"
    rows = [f"p{i},Linen shirt {i},Shirts" for i in range(1, 101)]
    rows[94] = 'p95,"Linen shirt 95,Shirts'  # row 95 = line 96
    cat = tmp_path / "cat.csv"
    cat.write_text("id,title,category\n" + "\n".join(rows) + "\n")
    res = _ingest(cat, data, "--category-col", "category", "--dead-letter", str(dead))
    assert res.exit_code == 0, res.output  # 1 failure in 100 is under the default 5%
    rep = json.loads(res.stdout)
    assert (rep["read"], rep["loaded"], rep["failed"]) == (100, 99, 1)
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert [(d["line"], d["field"], d["kind"]) for d in letters] == [(96, "record", "bad_record")]
    assert "unclosed quote" in letters[0]["reason"]
    got, count = _titles(data, [f"p{i}" for i in range(94, 101)])
    assert count == 99 and sorted(got) == ["p100", "p94", "p96", "p97", "p98", "p99"]
    assert got["p96"] == ("Linen shirt 96", "Shirts")


def test_bom_and_semicolons_as_excel_writes_them(tmp_path):
    data = tmp_path / "data"
    cat = tmp_path / "cat.csv"
    cat.write_bytes(b"\xef\xbb\xbfid;title;category\n" + "x1;Caf\u00e9 t-shirt, red;Tshirts\n".encode()
                    + b"x2;Wool scarf;Scarves\n")
    res = _ingest(cat, data, "--category-col", "category")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert (rep["loaded"], rep["failed"]) == (2, 0)
    got, _ = _titles(data, ["x1", "x2"])
    assert got == {"x1": ("Caf\u00e9 t-shirt, red", "Tshirts"), "x2": ("Wool scarf", "Scarves")}

    latin = tmp_path / "latin.csv"
    latin.write_bytes("id,title,category\nx3,Caf\u00e9 tee,Tshirts\n".encode("cp1252"))
    res = _ingest(latin, data, "--category-col", "category", "--encoding", "cp1252")
    assert res.exit_code == 0, res.output
    assert _titles(data, ["x3"])[0] == {"x3": ("Caf\u00e9 tee", "Tshirts")}
