"""The installed wheel at work: built and installed into a fresh venv outside the
checkout (tests/fixtures/wheel.py), with $HOME and the working directory in a tmp dir,
it runs the documented Python API (docs/python-api.md) with the in-process ONNX
encoder on embedded Milvus Lite, and, with the serving env, `samestyle demo` and the
search the demo tells the user to type next. The installed package exports the model
to ONNX and builds its Triton repository under its own cache dir (~/.cache/samestyle),
once for the module: the API test's export is the demo's too."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.fixtures.wheel import ROOT, Installed, install_wheel

SERVE_PYTHON = ROOT / ".venv-serve" / "bin" / "python"

# Run by the installed python, cwd outside the checkout: generate a small catalogue with
# the installed package, then every call of the documented API on it. Prints what the
# test asserts on.
API_SCRIPT = r'''
import csv, json, sys
from pathlib import Path

import samestyle
from samestyle.loaders.synthetic import generate

cat = generate(Path("catalogue"), n_groups=6, n_duplicates=3, n_singletons=2)
rows = list(csv.DictReader(cat.csv_path.open()))
products = [{"id": r["id"], "title": r["title"], "image": r["image"], "category": r["articleType"],
             "brand": r["brand"], "gender": r["gender"], "colour": r["baseColour"], "price": float(r["price"])}
            for r in rows]
title = {r["id"]: r["title"] for r in rows}
photo = {r["id"]: str(cat.root / r["image"]) for r in rows}
orig, dup = cat.duplicates[0]
out = {"file": samestyle.__file__, "n": len(products), "pairs": cat.duplicates, "orig": orig, "dup": dup}

with samestyle.connect(collection="wheel_api", encoder="onnx", data_dir="data") as ss:
    rep = ss.upsert(products + [{"title": "a record without an id"}], photo_base=cat.root)
    out["upsert"] = {"upserted": rep.upserted, "unchanged": rep.unchanged,
                     "rejected": [r["kind"] for r in rep.rejected]}
    out["again"] = ss.upsert(products[:2], photo_base=cat.root).unchanged

    out["by_product"] = {o: ss.search_product(o, k=3).ids for o, _ in cat.duplicates}
    res = ss.search_text(title[orig], k=3)
    out["by_text"] = {"ids": res.ids, "sim": res.hits[0].similarity, "type": type(res).__name__}
    res = ss.search_photo(photo[orig], k=3)
    out["by_photo"] = {"ids": res.ids, "sims": [h.similarity for h in res.hits]}
    res = ss.search_photo(Path(photo[orig]).read_bytes(), modifier="but in black", k=3)
    out["by_photo_modifier"] = {"ids": res.ids, "fields": res.to_dict()["fields"]}
    batch = ss.by_products([orig, "NOPE"], k=2)
    out["batch"] = {"results": sorted(batch.results), "errors": {k: e.code for k, e in batch.errors.items()}}

    got = ss.get(orig)
    out["get"] = {"id": got["id"], "title": got["title"], "brand": got["brand"],
                  "many": sorted(ss.get([orig, dup, "NOPE"]))}
    out["delete"] = ss.delete([dup, "NOPE"])
    out["get_deleted"] = ss.get(dup)
    out["after_delete"] = ss.search_product(orig, k=3).ids
    try:
        ss.search_product(dup)
    except samestyle.InputError as exc:
        out["deleted_error"] = {"code": exc.code, "field": exc.field, "fix": bool(exc.fix)}
    out["collections"] = [(c["name"], c["aliases"], c["count"]) for c in ss.collections()]
print("RESULT " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Installed:
    return install_wheel(wheel, tmp_path_factory.mktemp("installed"))


def _result(r) -> dict:
    assert r.returncode == 0, r.stderr[-4000:]
    line = next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


@pytest.mark.slow
def test_python_api_runs_from_the_installed_wheel(installed, tmp_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    got = _result(installed.run([installed.python, "-c", API_SCRIPT], cwd=work, timeout=900))
    orig, dup = got["orig"], got["dup"]

    assert Path(got["file"]).parent == installed.site / "samestyle"
    assert got["upsert"] == {"upserted": got["n"], "unchanged": 0, "rejected": ["missing_id"]}
    assert got["again"] == 2, "unchanged products are not re-encoded"
    # same style as a stored product: its re-listing (same photo, reworded title) first
    for o, d in got["pairs"]:
        assert got["by_product"][o][0] == d, (o, d, got["by_product"][o])
    # its exact title finds it; its photo finds it and its re-listing
    assert got["by_text"]["ids"][0] == orig and got["by_text"]["sim"] > 0.99 and got["by_text"]["type"] == "SearchResult"
    assert {orig, dup} <= set(got["by_photo"]["ids"]) and got["by_photo"]["sims"][0] > 0.99, got["by_photo"]
    assert got["by_photo_modifier"]["ids"] and got["by_photo_modifier"]["fields"]
    assert got["batch"] == {"results": [orig], "errors": {"NOPE": "not_found"}}
    assert got["get"]["id"] == orig and got["get"]["title"] and got["get"]["many"] == sorted([orig, dup])
    assert got["delete"] == {"collection": "wheel_api", "deleted": [dup], "missing": ["NOPE"]}
    assert got["get_deleted"] is None and dup not in got["after_delete"]
    assert got["deleted_error"] == {"code": "not_found", "field": "product_id", "fix": True}
    assert [c for c in got["collections"] if "wheel_api" in c[1]][0][2] == got["n"] - 1
    # the installed package exported the model into its cache, and wrote only under cwd
    (bundle,) = (installed.home / ".cache" / "samestyle" / "onnx").iterdir()
    assert (bundle / "manifest.json").exists()
    assert (work / "data" / "milvus.db").exists()


DEMO_PRODUCT = re.compile(r"^== product (\S+) \(its re-listed duplicate is (\S+)\)$")


@pytest.mark.triton
def test_demo_runs_from_the_installed_wheel(installed, tmp_path):
    """`samestyle demo` as a user of the wheel runs it: cwd outside the checkout, the
    serving env named by SAMESTYLE_SERVE_PYTHON (README, "Installing the package
    elsewhere"); it ends with search results and the next commands, and the first of
    those commands works."""
    if not SERVE_PYTHON.exists():
        pytest.skip(f"serving environment not found at {SERVE_PYTHON} (make setup creates it)")
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = installed.run([installed.samestyle, "demo", "--products", "6"], cwd=work, timeout=900,
                      SAMESTYLE_SERVE_PYTHON=str(SERVE_PYTHON))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "starting a local Triton" in r.stderr
    out = r.stdout.splitlines()
    sections = [i for i, line in enumerate(out) if line.startswith("== ")]
    assert len(sections) == 5, r.stdout
    orig, dup = DEMO_PRODUCT.match(out[sections[0]]).groups()
    nxt = out.index("Next, on the same data:")
    assert nxt > sections[-1] and out[nxt + 1].strip() == f"samestyle search --product {orig}"
    # each search printed its table: "N hits", the column line, then hit 1, 2, ...
    first_hits = []
    for i, end in zip(sections, sections[1:] + [nxt]):
        block = out[i:end]
        assert re.search(r": [1-9]\d* hits in ", block[1]), block
        head = next(j for j, line in enumerate(block) if line.split()[:2] == ["#", "id"])
        assert block[head + 1].split()[0] == "1", block
        first_hits.append(block[head + 1].split()[1])
    assert first_hits[0] == dup, out[sections[0]:sections[1]]
    # the repository was built in the package's cache, not in the checkout or the cwd
    repo = installed.home / ".cache" / "samestyle" / "triton_models"
    assert (repo / "product_encoder" / "1" / "manifest.json").exists()
    assert (work / ".samestyle" / "milvus.db").exists()

    r = installed.run([installed.samestyle, "search", "--product", orig, "--json"], cwd=work, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    hits = json.loads(r.stdout)["hits"]
    assert hits[0]["id"] == dup
