"""Ingest + search end to end on a deployed stack (tests/fixtures/deploy.py): Milvus and
Triton from the Docker images where a Docker engine exists, as local processes
everywhere. The same bodies run on both; they talk to the servers only the way a
user does: `samestyle ingest` / `samestyle search` in a subprocess, the public Python
API (samestyle.query.Searcher, samestyle.encoders.triton.TritonEncoder), and pymilvus."""

from __future__ import annotations

import csv

import pytest

from samestyle import contract as C


def descending(scores: list[float], tol: float = 1e-5) -> bool:
    """Ranked best first (up to float noise: Milvus and the fusion round differently)."""
    return all(a >= b - tol for a, b in zip(scores, scores[1:]))


@pytest.fixture(scope="module")
def ingested(deployed_stack, catalogue) -> dict:
    """The catalogue loaded once per backend, through the CLI."""
    return deployed_stack.cli_json("ingest", str(catalogue.csv_path), "--no-progress")


@pytest.fixture(scope="module")
def titles(catalogue) -> dict[str, str]:
    with open(catalogue.csv_path, newline="") as f:
        return {row["id"]: row["title"] for row in csv.DictReader(f)}


def test_ingest_loads_every_product(deployed_stack, catalogue, ingested):
    from samestyle.store.collections import client as milvus_client

    n = catalogue.n_products
    assert (ingested["read"], ingested["loaded"], ingested["failed"]) == (n, n, 0), ingested
    assert ingested["alias"] == C.COLLECTION_ALIAS and ingested["count"] == n
    # Read back from the server itself, not from the report.
    client = milvus_client(deployed_stack.milvus_uri)
    try:
        assert client.describe_alias(C.COLLECTION_ALIAS)["collection_name"].startswith(C.COLLECTION_PREFIX)
        assert client.query(C.COLLECTION_ALIAS, filter="", output_fields=["count(*)"])[0]["count(*)"] == n
        pid = catalogue.groups[0][0]
        row = client.get(C.COLLECTION_ALIAS, ids=[pid], output_fields=["id", "has_image", "has_text", "fused_vec"])[0]
        assert row["has_image"] and row["has_text"]
        assert sum(x * x for x in row["fused_vec"]) == pytest.approx(1.0, abs=1e-3)  # L2-normalised
    finally:
        client.close()


def test_product_search_finds_near_duplicates(deployed_stack, catalogue, ingested):
    """A re-listed product (same photo, reworded title) is what same-style search is for."""
    from samestyle.query.search import Searcher

    searcher = Searcher.from_settings(deployed_stack.settings)
    found = 0
    for original, duplicate in catalogue.duplicates:
        res = searcher.by_product(original, k=10)
        assert original not in res.ids, "the query product must not be its own hit"
        assert descending([h.score for h in res.hits])
        found += duplicate in res.ids
    assert found >= 0.8 * len(catalogue.duplicates), f"{found}/{len(catalogue.duplicates)} duplicates found"


def test_text_search_encodes_on_the_deployed_triton(deployed_stack, catalogue, ingested, titles):
    """A title, encoded by the stack's Triton, finds the product stored with it."""
    from samestyle.encoders.triton import TritonEncoder
    from samestyle.query.search import Searcher

    sample = [ids[0] for ids in list(catalogue.groups.values())[:5]]
    with TritonEncoder(deployed_stack.triton_url) as enc:
        assert enc.model_version == ingested["model_version"]
        searcher = Searcher.from_settings(deployed_stack.settings, encoder=enc)
        for pid in sample:
            res = searcher.by_text(titles[pid], k=5)
            assert pid in res.ids[:3], f"[{titles[pid]}] -> {res.ids}"


def test_search_cli(deployed_stack, catalogue, ingested):
    original, duplicate = catalogue.duplicates[0]
    out = deployed_stack.cli_json("search", "--product", original)
    ids = [h["id"] for h in out["hits"]]
    assert ids and original not in ids
    assert duplicate in ids
    assert descending([h["score"] for h in out["hits"]])


def test_reingest_skips_unchanged_products(deployed_stack, catalogue, ingested):
    """Re-running ingest against the deployed Milvus finds every content hash stored."""
    again = deployed_stack.cli_json("ingest", str(catalogue.csv_path), "--no-progress")
    n = catalogue.n_products
    assert (again["unchanged"], again["loaded"], again["failed"], again["count"]) == (n, 0, 0, n), again
