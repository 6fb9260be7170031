"""Ingest checkpoints (resume state) and the failure threshold."""

from __future__ import annotations

import os

import pytest

from samestyle.loaders.checkpoint import Checkpoint
from samestyle.loaders.jobs import Threshold
from samestyle.errors import ConfigError, StoreError

JOB = dict(collection="products_v1", model_version="m1", columns="[]", limit=None)


def test_round_trip_and_resume(tmp_path):
    cat = tmp_path / "c.csv"
    cat.write_text("id\n1\n")
    ck = Checkpoint.open(tmp_path / "ck", cat, **JOB)
    assert not ck.resumed and ck.next_line == 0
    ck.next_line, ck.counts, ck.dead_letter_offset = 40, {"loaded": 30, "failed": 2}, 123
    ck.save()
    ck.release()
    again = Checkpoint.open(tmp_path / "ck", cat, **JOB)
    assert again.resumed and again.next_line == 40 and again.counts["loaded"] == 30
    assert again.dead_letter_offset == 123 and again.path == ck.path
    again.clear()
    again.release()
    assert not Checkpoint.open(tmp_path / "ck", cat, **JOB).resumed


@pytest.mark.parametrize("change", ["catalogue", "collection", "model", "limit"])
def test_a_changed_job_starts_over(tmp_path, change):
    cat = tmp_path / "c.csv"
    cat.write_text("id\n1\n")
    ck = Checkpoint.open(tmp_path / "ck", cat, **JOB)
    ck.next_line = 9
    ck.save()
    ck.release()
    job = dict(JOB)
    if change == "catalogue":
        cat.write_text("id\n1\n2\n")
        os.utime(cat, ns=(1, 1))
    elif change == "collection":
        job["collection"] = "products_v2"
    elif change == "model":
        job["model_version"] = "m2"
    else:
        job["limit"] = 10
    assert not Checkpoint.open(tmp_path / "ck", cat, **job).resumed


def test_one_ingest_per_job_at_a_time(tmp_path):
    cat = tmp_path / "c.csv"
    cat.write_text("id\n1\n")
    first = Checkpoint.open(tmp_path / "ck", cat, **JOB)
    with pytest.raises(StoreError, match="is running") as err:
        Checkpoint.open(tmp_path / "ck", cat, **JOB)
    assert err.value.fix
    first.release()
    Checkpoint.open(tmp_path / "ck", cat, **JOB).release()


def test_damaged_checkpoint_is_ignored(tmp_path):
    cat = tmp_path / "c.csv"
    cat.write_text("id\n1\n")
    ck = Checkpoint.open(tmp_path / "ck", cat, **JOB)
    ck.path.write_text("{not json")
    ck.release()
    assert not Checkpoint.open(tmp_path / "ck", cat, **JOB).resumed


@pytest.mark.parametrize("text,failed,read,exceeded", [
    ("5%", 5, 100, False), ("5%", 6, 100, True), ("0.05", 6, 100, True), ("0", 0, 100, False),
    ("0", 1, 100, True), ("25", 25, 30, False), ("25", 26, 1000, True), ("100%", 10, 10, False),
    ("1", 1, 1, False), ("5%", 0, 0, False),
])
def test_threshold(text, failed, read, exceeded):
    assert Threshold.parse(text).exceeded(failed, read) is exceeded


@pytest.mark.parametrize("text", ["five", "-1", "2.5", "150%", ""])
def test_bad_threshold_says_how(text):
    with pytest.raises(ConfigError) as err:
        Threshold.parse(text)
    assert "--max-failures" in err.value.fix
