"""The shipped model on real catalogue data: a slice of the Myntra catalogue
(../shared/datasets/myntra; skipped with the reason when absent) ingested into Milvus
Lite, then same-style search by product. The full-catalogue figures are in
docs/model.md and docs/benchmarks/README.md."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.myntra

ROWS = 400


@pytest.fixture(scope="module")
def myntra_slice(myntra_dir, tmp_path_factory, onnx_encoder):
    from samestyle.loaders.jobs import ingest_catalogue
    from samestyle.loaders.transform import ColumnMap
    from samestyle.config import Settings
    from samestyle.store import Store
    from samestyle.loaders.pipeline import IngestOptions

    settings = Settings(data_dir=tmp_path_factory.mktemp("myntra"))
    store = Store.open(settings)
    report = ingest_catalogue(myntra_dir / "products.csv", store=store, encoder=onnx_encoder, columns=ColumnMap(),
                              data_dir=settings.data_dir, options=IngestOptions(batch_size=32, limit=ROWS))
    yield settings, store, report
    store.close()


def test_slice_ingests_whole(myntra_slice):
    _, store, report = myntra_slice
    assert report["failed"] == 0, report
    assert report["loaded"] == ROWS and report["count"] == ROWS


def test_same_style_found_by_product(myntra_slice, myntra_dir, onnx_encoder):
    import csv

    from samestyle.query.search import Searcher, SearchOptions

    settings, _, _ = myntra_slice
    rows = []
    with (myntra_dir / "products.csv").open(newline="") as f:
        for i, r in enumerate(csv.DictReader(f)):
            if i >= ROWS:
                break
            rows.append(r)
    groups: dict[str, list[str]] = {}
    for r in rows:
        if r["style_group"] != "-1":
            groups.setdefault(r["style_group"], []).append(r["id"])
    queries = [(pid, set(m) - {pid}) for m in groups.values() if len(m) > 1 for pid in m]
    if len(queries) < 10:
        pytest.skip(f"only {len(queries)} same-style queries in the first {ROWS} rows")
    searcher = Searcher.from_settings(settings, encoder=onnx_encoder)
    try:
        hits = [bool(set(searcher.by_product(pid, SearchOptions(k=5)).ids) & others) for pid, others in queries]
    finally:
        searcher.close()
    rate = float(np.mean(hits))
    # the shipped model's m->m R@5 over the whole 42k catalogue is far higher (docs/model.md);
    # a 400-product slice must do at least as well as a weak bar
    assert rate >= 0.8, f"same-style hit rate@5 {rate:.2f} over {len(queries)} queries"
