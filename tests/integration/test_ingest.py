"""Ingestion end to end, against a real Milvus Lite (embedded and as a gRPC server)
and the real encoders (in-process ONNX Runtime; Triton in one test).

The generated catalogue (~144 products) is ingested once per session
(`ingested_store`); tests that change that collection put it back."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from samestyle.loaders.jobs import ingest_catalogue, open_encoder, reindex_catalogue
from samestyle.loaders.photos import PhotoOptions
from samestyle.loaders.pipeline import IngestOptions
from samestyle.loaders.transform import ColumnMap
from samestyle import contract as C
from samestyle.config import Settings
from samestyle.encoders.base import Encoder, ProductInput
from samestyle.errors import ConfigError, SchemaMismatch, StoreError
from samestyle.store import Store
from samestyle.store import spec as S
from tests.fixtures.milvus import subprocess_env

VECTORS = list(C.VECTOR_FIELDS.values())


class CountingEncoder(Encoder):
    """The real encoder, counting the products it is asked to encode."""

    def __init__(self, inner: Encoder):
        self.inner, self.dim, self.model_version = inner, inner.dim, inner.model_version
        self.max_batch, self.consts, self.products = inner.max_batch, getattr(inner, "consts", None), 0

    def encode_batch(self, products):
        self.products += len(products)
        return self.inner.encode_batch(products)


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _ingest(path, store, encoder, settings, **kw):
    opts = kw.pop("options", IngestOptions(batch_size=16))
    return ingest_catalogue(path, store=store, encoder=encoder, columns=ColumnMap(), data_dir=settings.data_dir,
                            options=opts, **kw)


def _stored(store: Store, name: str, ids: list[str]) -> dict[str, dict]:
    return store.fetch(name, ids, [*store.spec.scalar_output_fields, *VECTORS, "price", "style_group"])


def _direct(encoder, cat_root: Path, rows: list[dict]):
    inputs = [ProductInput(r["id"], (cat_root / r["image"]).read_bytes() if r["image"] else None, r["title"])
              for r in rows]
    return encoder.encode(inputs, batch_size=16)


def _assert_vectors_equal(stored: dict[str, dict], rows: list[dict], direct, atol=1e-5):
    for i, r in enumerate(rows):
        for view, name in C.VECTOR_FIELDS.items():
            np.testing.assert_allclose(np.asarray(stored[r["id"]][name], np.float32), direct.view(view)[i],
                                       atol=atol, err_msg=f"{r['id']} {name}")


# --- the clean ingest ---------------------------------------------------------------------
def test_clean_ingest_counts_fields_and_dimensions(ingested_store):
    ing, rows = ingested_store, _rows(ingested_store.catalogue.csv_path)
    r = ing.report
    assert (r["read"], r["loaded"], r["unchanged"], r["failed"]) == (len(rows), len(rows), 0, 0)
    assert r["complete"] and not r["threshold_exceeded"] and r["alias"] == C.COLLECTION_ALIAS
    store = ing.store
    assert store.alias_target() == C.collection_name(1) == r["collection"]
    assert store.count(C.COLLECTION_ALIAS) == len(rows)
    desc = store.describe(C.collection_name(1))
    dims = {f["name"]: f["params"].get("dim") for f in desc["fields"] if f["name"] in VECTORS}
    assert dims == {v: 256 for v in VECTORS}
    info = store.info(C.collection_name(1))
    assert (info.model_version, info.embed_dim, info.state) == (r["model_version"], 256, "complete")
    stored = _stored(store, C.COLLECTION_ALIAS, [x["id"] for x in rows])
    for x in rows:
        s = stored[x["id"]]
        assert (s["title"], s["image_uri"], s["category"]) == (x["title"], x["image"], x["articleType"])
        assert (s["brand"], s["gender"], s["colour"]) == (x["brand"], x["gender"], x["baseColour"])
        assert s["has_image"] and s["has_text"] and s["model_version"] == r["model_version"]
        assert s["price"] == pytest.approx(float(x["price"])) and s["style_group"] == int(x["style_group"])
        assert len(s["content_hash"]) == 64


def test_stored_rows_carry_the_photo_hash_of_their_decoded_photo(ingested_store):
    """The decode step hashes each photo (transform.inspect_photo); the hash lands in the
    dynamic attribute contract.PHOTO_HASH, and dedup.load reads it back."""
    from samestyle import dedup as D
    from samestyle import photohash as PH
    from samestyle.loaders.transform import inspect_photo

    rows = _rows(ingested_store.catalogue.csv_path)
    store, consts = ingested_store.store, C.preprocess_constants()
    stored = store.fetch(C.COLLECTION_ALIAS, [r["id"] for r in rows], [C.PHOTO_HASH])
    for r in rows:
        want = inspect_photo((ingested_store.catalogue.root / r["image"]).read_bytes(), consts)[1]
        assert len(want) == PH.HEX_LEN and stored[r["id"]][C.PHOTO_HASH] == want, r["id"]
    cat = D.load(store, C.COLLECTION_ALIAS)
    assert cat.extra[C.PHOTO_HASH] == [stored[i][C.PHOTO_HASH] for i in cat.ids]


def test_stored_vectors_equal_a_direct_encode(ingested_store, onnx_encoder):
    rows = _rows(ingested_store.catalogue.csv_path)[::3]  # a third is proof enough; encoding is the cost
    stored = _stored(ingested_store.store, C.COLLECTION_ALIAS, [r["id"] for r in rows])
    _assert_vectors_equal(stored, rows, _direct(onnx_encoder, ingested_store.catalogue.root, rows))


def test_rerun_encodes_nothing_and_a_change_reencodes_only_that_product(ingested_store, onnx_encoder):
    ing = ingested_store
    path = ing.catalogue.csv_path
    counting = CountingEncoder(onnx_encoder)
    again = _ingest(path, ing.store, counting, ing.settings)
    assert (again["loaded"], again["unchanged"], again["failed"], counting.products) == (0, len(_rows(path)), 0, 0)

    rows = _rows(path)
    rows[4]["title"] = "Completely New Title"
    changed = _ingest(_write(path.with_name("changed.csv"), rows), ing.store, counting, ing.settings)
    assert (changed["loaded"], changed["unchanged"], counting.products) == (1, len(rows) - 1, 1)
    assert ing.store.fetch(C.COLLECTION_ALIAS, [rows[4]["id"]])[rows[4]["id"]]["title"] == "Completely New Title"
    back = _ingest(path, ing.store, counting, ing.settings)  # put the session collection back
    assert back["loaded"] == 1 and ing.store.count(C.COLLECTION_ALIAS) == len(rows)


# --- SIGKILL and resume ---------------------------------------------------------------------
def _wait_for_checkpoint(ck_dir: Path, proc: subprocess.Popen, min_line: int, timeout: float = 180) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"ingest ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        for f in ck_dir.glob("*.json"):
            try:
                line = json.loads(f.read_text())["next_line"]
            except (OSError, ValueError, KeyError):
                continue
            if line >= min_line:
                return line
        time.sleep(0.05)
    pytest.fail("no checkpoint progress within the timeout")


@pytest.mark.slow  # a subprocess ingest SIGKILLed mid-run, then run again to the end
def test_sigkill_mid_ingest_then_rerun_equals_a_clean_run(tmp_path, ingested_store, samestyle_cli, onnx_encoder):
    clean = ingested_store
    rows = _rows(clean.catalogue.csv_path)[:56]
    path = _write(clean.catalogue.root / "first56.csv", rows)
    settings = Settings(data_dir=tmp_path / "data")
    cmd = [*samestyle_cli, "ingest", str(path), "--encoder", "onnx", "--batch-size", "8", "--json", "--no-progress"]
    proc = subprocess.Popen(cmd, env=subprocess_env(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        killed_at = _wait_for_checkpoint(settings.data_dir / "checkpoints", proc, min_line=18)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()

    with Store.open(settings) as store:
        name = C.collection_name(1)
        assert store.alias_target() is None  # the alias only appears once the ingest completes
        partial = store.count(name)
        assert 0 < partial < len(rows), (killed_at, partial)
        resumed = _ingest(path, store, onnx_encoder, settings, options=IngestOptions(batch_size=8))
        assert resumed["resumed_from_line"] is not None and resumed["resumed_from_line"] >= killed_at
        assert resumed["complete"] and resumed["failed"] == 0
        assert resumed["loaded"] + resumed["unchanged"] == len(rows)
        assert resumed["read"] == len(rows)
        assert store.alias_target() == name
        # Same ids, same vectors and scalars, no duplicates.
        assert store.count(C.COLLECTION_ALIAS) == len(rows)
        ids = [r["id"] for r in rows]
        got = _stored(store, name, ids)
        want = _stored(clean.store, C.COLLECTION_ALIAS, ids)
        assert set(got) == set(want) == set(ids)
        for pid in ids:
            for k, v in want[pid].items():
                if k in VECTORS:
                    np.testing.assert_allclose(got[pid][k], v, atol=1e-5, err_msg=f"{pid} {k}")
                else:
                    assert got[pid][k] == v, (pid, k)


# --- bad records --------------------------------------------------------------------------
def _png_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 50), (10, 200, 30)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bad_catalogue(root: Path, catalogue) -> tuple[Path, dict[int, tuple], int]:
    """A CSV holding every kind of bad record between good ones. Returns the path,
    {line: (id, field, kinds)} of the bad ones and the number of good ones."""
    (root / "images").mkdir(parents=True)
    src = _rows(catalogue.csv_path)[:4]
    for r in src:
        (root / r["image"]).write_bytes((catalogue.root / r["image"]).read_bytes())
    (root / "images" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "images" / "huge.jpg").write_bytes(b"\xff\xd8" + b"\0" * C.MAX_PHOTO_BYTES)
    jpg = (catalogue.root / src[1]["image"]).read_bytes()
    (root / "images" / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    header = "id,title,image,articleType,brand\n"
    good = [f"{r['id']},{r['title']},{r['image']},{r['articleType']},{r['brand']}\n" for r in src]
    lines: list[bytes] = [header.encode()]
    bad: dict[int, tuple] = {}

    def add(text: str | bytes, expect=None):
        lines.append(text if isinstance(text, bytes) else text.encode())
        if expect:
            bad[len(lines)] = expect

    add(good[0])
    add(",No Id Tee,images/x.jpg,Tshirts,Puma\n", (None, "id", {"missing_id"}))
    add("B1,Missing Photo Tee,images/nope.jpg,Tshirts,Puma\n", ("B1", "image", {"unreadable_photo"}))
    add(good[1])
    add("B2,Corrupt Photo Tee,images/corrupt.jpg,Tshirts,Puma\n", ("B2", "image", {"unreadable_photo"}))
    add("B3,Huge Photo Tee,images/huge.jpg,Tshirts,Puma\n", ("B3", "image", {"oversize_photo"}))
    add("B4,,,Tshirts,Puma\n", ("B4", "title,image", {"no_photo_no_title"}))
    add(b"B5,Caf\xe9 Tee,images/x.jpg,Tshirts,Puma\n", ("B5", "title", {"invalid_utf8"}))
    add(f"B6,{'Long ' * 500},,Tshirts,Puma\n", ("B6", "title", {"oversize_field"}))
    add(f"{'X' * 300},Long Id Tee,,Tshirts,Puma\n", ("X" * 300, "id", {"oversize_field"}))
    add(f"B7,Long Brand Tee,,Tshirts,{'b' * 300}\n", ("B7", "brand", {"oversize_field"}))
    add(f"{src[0]['id']},Same Id Again,,Tshirts,Puma\n", (src[0]["id"], "id", {"duplicate_id"}))
    add("B8,Too,Many,Fields,Here,Really\n", (None, "record", {"bad_record"}))
    add("B9,Truncated Photo Tee,images/truncated.jpg,Tshirts,Puma\n",
        ("B9", "image", {"unreadable_photo", "encode_failed"}))
    add(good[2])
    add("G1,Text Only Tee,,Tshirts,Puma\n")
    add(f'G2,Inline Photo Tee,"{_png_b64()}",Tshirts,Puma\n')  # a data: URI holds a comma
    add(good[3])
    path = root / "bad.csv"
    path.write_bytes(b"".join(lines))
    return path, bad, 6


def test_bad_records_go_to_the_dead_letter_file_and_good_ones_load(tmp_path, catalogue):
    from samestyle.cli.main import cli

    path, bad, n_good = _bad_catalogue(tmp_path / "cat", catalogue)
    env = subprocess_env(Settings(data_dir=tmp_path / "data"))
    dead = tmp_path / "dead.jsonl"
    args = ["ingest", str(path), "--encoder", "onnx", "--json", "--no-progress", "--dead-letter", str(dead)]
    res = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
    assert res.exit_code == 1, res.output  # 12 of 18 failed: over the default 5%
    report = json.loads(res.stdout)
    assert (report["loaded"], report["failed"], report["threshold_exceeded"]) == (n_good, len(bad), True)
    letters = {d["line"]: d for d in map(json.loads, dead.read_text().splitlines())}
    assert set(letters) == set(bad)
    for line, (pid, field, kinds) in bad.items():
        d = letters[line]
        assert (d["id"], d["field"]) == (pid, field) and d["kind"] in kinds and d["reason"], d
    assert "first seen on line 2" in letters[13]["reason"]
    assert sum(report["reasons"].values()) == len(bad)

    with Store.open(Settings(data_dir=tmp_path / "data")) as store:
        assert store.count(C.COLLECTION_ALIAS) == n_good
        got = store.fetch(C.COLLECTION_ALIAS, ["G1", "G2"], [*store.spec.scalar_output_fields, "image_vec"])
        assert got["G1"]["has_image"] is False and not np.any(got["G1"]["image_vec"])
        assert got["G2"]["has_image"] and got["G2"]["image_uri"].startswith("inline:sha256:")

    # Under a looser threshold the same catalogue passes; nothing is re-encoded.
    res = CliRunner().invoke(cli, [*args, "--max-failures", "15"], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert (again["loaded"], again["unchanged"], again["failed"]) == (0, n_good, len(bad))


def test_an_empty_title_or_photo_never_blanks_a_stored_product_unless_allowed(tmp_path, catalogue):
    """Re-ingesting records whose title or photo column is empty keeps the stored
    title/photo and vectors (the records are dead-lettered, naming id, field and fix);
    --allow-blanking clears them deliberately."""
    from samestyle.cli.main import cli

    root = tmp_path / "cat"
    (root / "images").mkdir(parents=True)
    src = _rows(catalogue.csv_path)[:3]
    for r in src:
        (root / r["image"]).write_bytes((catalogue.root / r["image"]).read_bytes())
    full = [{k: r[k] for k in ("id", "title", "image", "articleType")} for r in src]
    ids = [r["id"] for r in full]
    env = subprocess_env(Settings(data_dir=tmp_path / "data"))
    dead = tmp_path / "dead.jsonl"

    def ingest(name, rows, *extra):
        args = ["ingest", str(_write(root / name, rows)), "--encoder", "onnx", "--json", "--no-progress",
                "--dead-letter", str(dead), "--max-failures", "100%", *extra]
        res = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)

    def stored():
        with Store.open(Settings(data_dir=tmp_path / "data")) as store:
            return _stored(store, C.COLLECTION_ALIAS, ids)

    assert ingest("full.csv", full)["loaded"] == 3
    before = stored()
    assert all(before[i]["has_text"] and before[i]["has_image"] for i in ids)

    blank = [dict(full[0], title=""), dict(full[1], image=""), full[2]]
    rep = ingest("blank.csv", blank)
    assert (rep["loaded"], rep["unchanged"], rep["failed"], rep["reasons"]) == (0, 1, 2, {"would_blank": 2})
    letters = {d["id"]: d for d in map(json.loads, dead.read_text().splitlines())}
    assert set(letters) == set(ids[:2])
    assert (letters[ids[0]]["line"], letters[ids[0]]["field"], letters[ids[0]]["kind"]) == (2, "title", "would_blank")
    assert (letters[ids[1]]["line"], letters[ids[1]]["field"]) == (3, "image")
    for pid, what in ((ids[0], "title"), (ids[1], "photo")):
        reason = letters[pid]["reason"]
        assert f"product [{pid}]: {what} is empty" in reason and "--allow-blanking" in reason, reason
    after = stored()
    for pid in ids:
        assert after[pid]["content_hash"] == before[pid]["content_hash"]
        assert (after[pid]["title"], after[pid]["image_uri"]) == (before[pid]["title"], before[pid]["image_uri"])
        for v in VECTORS:
            np.testing.assert_array_equal(after[pid][v], before[pid][v])

    rep = ingest("blank.csv", blank, "--allow-blanking")
    assert (rep["loaded"], rep["unchanged"], rep["failed"]) == (2, 1, 0)
    after = stored()
    assert (after[ids[0]]["has_text"], after[ids[0]]["title"], after[ids[0]]["has_image"]) == (False, "", True)
    assert not np.any(after[ids[0]]["text_vec"])
    np.testing.assert_array_equal(after[ids[0]]["image_vec"], before[ids[0]]["image_vec"])
    assert (after[ids[1]]["has_image"], after[ids[1]]["has_text"]) == (False, True)
    assert not np.any(after[ids[1]]["image_vec"])
    np.testing.assert_array_equal(after[ids[1]]["text_vec"], before[ids[1]]["text_vec"])


def test_crash_between_dead_letters_and_checkpoint_resumes_without_duplicates(tmp_path, catalogue, onnx_encoder,
                                                                              monkeypatch):
    """A crash after a batch's dead letters are written but before its checkpoint is
    saved (the narrowest window): the resumed run cuts the file back and rewrites
    them, so each bad record is reported once and the report equals a clean run's."""
    from samestyle.loaders.checkpoint import Checkpoint

    path, bad, n_good = _bad_catalogue(tmp_path / "cat", catalogue)
    settings = Settings(data_dir=tmp_path / "data")
    real_save, calls = Checkpoint.save, {"n": 0}

    def crashing_save(self):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        real_save(self)

    monkeypatch.setattr(Checkpoint, "save", crashing_save)
    with Store.open(settings) as store:
        with pytest.raises(KeyboardInterrupt):
            _ingest(path, store, onnx_encoder, settings, options=IngestOptions(batch_size=2), max_failures="100%")
        monkeypatch.setattr(Checkpoint, "save", real_save)
        rep = _ingest(path, store, onnx_encoder, settings, options=IngestOptions(batch_size=2), max_failures="100%")
        assert rep["resumed_from_line"] is not None
        assert (rep["read"], rep["loaded"] + rep["unchanged"], rep["failed"]) == (18, n_good, len(bad))
        assert store.count(C.COLLECTION_ALIAS) == n_good
    lines = [json.loads(x)["line"] for x in Path(rep["dead_letter"]).read_text().splitlines()]
    assert lines == sorted(bad)


def test_jsonl_catalogue_with_broken_lines(tmp_path, catalogue, onnx_encoder):
    r = _rows(catalogue.csv_path)[0]
    photo = str(catalogue.root / r["image"])
    lines = [json.dumps({"id": "J1", "title": r["title"], "image": photo, "articleType": "Tshirts", "size": 42}),
             '{"id": "J2", "title": ', json.dumps({"id": "J3", "title": "bad \ud800 title"}),
             json.dumps({"id": 4, "title": "Numeric Id", "articleType": "Tshirts"})]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        # J1's photo is an absolute path into the shared catalogue, outside this file's folder:
        # allowed as `--photo-root` allows it (tests/unit/test_confinement.py: refused without)
        rep = _ingest(path, store, onnx_encoder, settings, max_failures="100%",
                      photo_options=PhotoOptions(roots=(str(catalogue.root),)))
        assert (rep["loaded"], rep["failed"]) == (2, 2)
        got = store.fetch(C.COLLECTION_ALIAS, ["J1", "4"], [*store.spec.scalar_output_fields, "size"])
        assert got["J1"]["size"] == 42 and got["J1"]["image_uri"] == photo and got["4"]["has_image"] is False
    letters = [json.loads(x) for x in Path(rep["dead_letter"]).read_text().splitlines()]
    assert [(d["line"], d["kind"]) for d in letters] == [(2, "bad_record"), (3, "invalid_utf8")]


# --- photos over HTTP, Milvus Lite server, Triton ----------------------------------------------
def test_photos_over_http(tmp_path, catalogue, photo_server, onnx_encoder):
    rows = _rows(catalogue.csv_path)[:5]
    for r in rows:
        (photo_server.root / Path(r["image"]).name).write_bytes((catalogue.root / r["image"]).read_bytes())
    urls = [f"{photo_server.url}/{Path(r['image']).name}" for r in rows]
    urls[1] = f"{photo_server.url}/flaky/1/{Path(rows[1]['image']).name}"  # one 503, then the photo
    urls[3] = f"{photo_server.url}/status/404"
    urls[4] = f"{photo_server.url}/slow/{Path(rows[4]['image']).name}"
    path = _write(tmp_path / "http.csv", [dict(r, image=u) for r, u in zip(rows, urls)])
    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        rep = _ingest(path, store, onnx_encoder, settings, max_failures="2",
                      photo_options=PhotoOptions(timeout=0.5, retries=1, backoff=0.05, concurrency=4,
                                                 allow_private_hosts=True))  # the photo server is on loopback
        assert (rep["loaded"], rep["failed"], rep["reasons"]) == (3, 2, {"unreadable_photo": 2})
        ok = [rows[i] for i in (0, 1, 2)]
        stored = _stored(store, C.COLLECTION_ALIAS, [r["id"] for r in ok])
        assert [stored[r["id"]]["image_uri"] for r in ok] == urls[:3]
        _assert_vectors_equal(stored, ok, _direct(onnx_encoder, catalogue.root, ok))


def test_ingest_into_a_milvus_lite_server(tmp_path, catalogue, milvus_lite_server, onnx_encoder):
    rows = _rows(catalogue.csv_path)[:10]
    path = _write(catalogue.root / "first10.csv", rows)
    settings = Settings(data_dir=tmp_path / "data", milvus_uri=milvus_lite_server)
    assert settings.resolved_profile == "lite"
    with Store.open(settings) as store:
        rep = _ingest(path, store, onnx_encoder, settings)
        assert rep["loaded"] == 10 and rep["count"] == 10
    with Store.open(settings) as store:  # a new client sees the same, loaded collection
        assert store.alias_target() == C.collection_name(1)
        assert store.count(C.COLLECTION_ALIAS) == 10


@pytest.mark.triton
def test_ingest_through_triton_stores_the_same_vectors(request, tmp_path, catalogue, onnx_encoder):
    try:
        url = request.getfixturevalue("triton_url")
    except pytest.FixtureLookupError:
        pytest.skip("the triton_url fixture (tests/fixtures/triton.py) is not available yet")
    rows = _rows(catalogue.csv_path)[:16]
    path = _write(catalogue.root / "first16.csv", rows)
    settings = Settings(data_dir=tmp_path / "data", triton_url=url)
    with Store.open(settings) as store, open_encoder(settings, "triton") as enc:
        rep = _ingest(path, store, enc, settings)
        assert (rep["loaded"], rep["model_version"]) == (16, onnx_encoder.model_version)
        stored = _stored(store, C.COLLECTION_ALIAS, [r["id"] for r in rows])
    _assert_vectors_equal(stored, rows, _direct(onnx_encoder, catalogue.root, rows), atol=1e-4)


# --- reindex and collections ----------------------------------------------------------------
def test_reindex_switches_the_alias_only_when_complete(tmp_path, catalogue, onnx_encoder, onnx_encoder_128):
    from samestyle.cli.main import cli

    rows = _rows(catalogue.csv_path)[:20]
    path = _write(catalogue.root / "first20.csv", rows)
    settings = Settings(data_dir=tmp_path / "data")
    kw = dict(columns=ColumnMap(), data_dir=settings.data_dir, options=IngestOptions(batch_size=16))
    with Store.open(settings) as store:
        _ingest(path, store, onnx_encoder, settings)
        v1, v2 = C.collection_name(1), C.collection_name(2)
        with pytest.raises(SchemaMismatch) as err:  # a new model cannot write into the old collection
            _ingest(path, store, onnx_encoder_128, settings)
        assert "128-d" in str(err.value) and "samestyle reindex" in err.value.fix

        seen = {}

        def before_switch(name):
            seen.update(alias=store.alias_target(), count=store.count(name),
                        dim=store.info(name).embed_dim, live_dim=store.info(store.alias_target()).embed_dim)

        rep = reindex_catalogue(path, store=store, encoder=onnx_encoder_128, before_switch=before_switch, **kw)
        assert seen == {"alias": v1, "count": 20, "dim": 128, "live_dim": 256}
        assert rep["switched"] and rep["previous"] == v1 and store.alias_target() == v2
        assert store.info(v2).embed_dim == 128 and store.info(v1).count == 20  # the old version stays

        with pytest.raises(ConfigError, match="already holds model"):
            reindex_catalogue(path, store=store, encoder=onnx_encoder_128, **kw)

        broken = [dict(r) for r in rows]
        broken[3]["image"] = "images/missing.jpg"
        bad = reindex_catalogue(_write(catalogue.root / "broken20.csv", broken), store=store, encoder=onnx_encoder,
                                max_failures="0", **kw)
        assert not bad["switched"] and "over 0" in bad["not_switched_because"]
        assert store.alias_target() == v2

    env = subprocess_env(settings)
    res = CliRunner().invoke(cli, ["collections", "--json"], env=env, catch_exceptions=False)
    listing = json.loads(res.stdout)
    assert listing["alias_target"] == v2
    by_name = {c["name"]: c for c in listing["collections"]}
    assert by_name[v2]["aliases"] == [C.COLLECTION_ALIAS] and by_name[v2]["count"] == 20
    assert by_name[C.collection_name(3)]["state"] == "building" and by_name[C.collection_name(3)]["count"] == 19
    res = CliRunner().invoke(cli, ["collections", "--drop", v2], env=env)
    assert res.exit_code == 1 and "behind the alias" in res.output
    res = CliRunner().invoke(cli, ["collections", "--drop", C.collection_name(3), "--json"], env=env)
    assert res.exit_code == 0 and C.collection_name(3) not in {c["name"] for c in json.loads(res.stdout)["collections"]}


def test_a_row_milvus_refuses_does_not_keep_its_batch_out(tmp_path, onnx_encoder):
    from samestyle.loaders.pipeline import upsert_isolating
    from samestyle.loaders.sources import RawRecord
    from samestyle.loaders.transform import Transformer

    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        name = store.create_version({"model_version": onnx_encoder.model_version, "embed_dim": onnx_encoder.dim})
        tf = Transformer(store.spec, ColumnMap(), onnx_encoder.model_version)
        prods = [tf.finish(tf.parse(RawRecord(i + 2, {"id": f"R{i}", "title": f"Tee {i}"})), None) for i in range(3)]
        enc = onnx_encoder.encode([p.input for p in prods])
        rows = [tf.row(p, enc, i) for i, p in enumerate(prods)]
        rows[1]["text_vec"] = rows[1]["text_vec"][:10]  # a row Milvus will not take
        rejected = upsert_isolating(store, name, rows, prods)
        assert [(r.id, r.line, r.kind) for r in rejected] == [("R1", 3, "store_rejected")]
        assert "256" in rejected[0].reason
        assert sorted(store.fetch(name, ["R0", "R1", "R2"])) == ["R0", "R2"]


def test_a_collection_not_made_by_samestyle_is_refused(tmp_path, onnx_encoder):
    settings = Settings(data_dir=tmp_path / "data")
    with Store.open(settings) as store:
        spec, prof = store.spec, store.profile
        store.client.create_collection("products_v1", schema=S.build_schema(spec, {"embed_dim": 256}, prof))
        with pytest.raises(SchemaMismatch, match="not created by samestyle"):
            store.resolve_target({"model_version": onnx_encoder.model_version, "embed_dim": 256}, "products_v1")
        with pytest.raises(StoreError):
            store.fetch("nope_v1", ["a"])


# --- the benchmark's smoke run -------------------------------------------------------------
@pytest.mark.slow  # a benchmark run (CLI subprocess over the catalogue)
def test_bench_ingest_quick(tmp_path, catalogue):
    from samestyle.bench.ingest import prepare_catalogue
    from samestyle.cli.main import cli

    out = tmp_path / "sub.csv"
    assert prepare_catalogue(catalogue.csv_path, catalogue.root / "images", 5, out) == 5
    assert all(Path(r["image"]).is_absolute() and Path(r["image"]).is_file() for r in _rows(out))
    plot = tmp_path / "ingest.png"
    env = subprocess_env(Settings(data_dir=tmp_path / "data"))
    res = CliRunner().invoke(cli, ["bench", "ingest", "--catalogue", str(catalogue.csv_path), "--photos",
                                   str(catalogue.root / "images"), "--encoder", "onnx", "--quick", "--json",
                                   "--plot", "--plot-file", str(plot)], env=env, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert (r["end_to_end"]["products"], r["ceiling"]["products"], r["naive"]["products"]) == (32, 32, 8)
    assert r["end_to_end"]["failed"] == 0 and r["end_to_end"]["peak_rss_mb"] > 0
    assert r["summary"]["end_to_end_vs_ceiling"] > 0 and plot.stat().st_size > 0
