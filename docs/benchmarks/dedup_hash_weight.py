"""Experiment (stop 31): bench dedup with photo+title's hash weight set to HW instead of
C.DEDUP_HASH_WEIGHT (0.8), by wrapping dedup.photo_title_pairs; the rest is the CLI."""
import os
import sys

from samestyle import dedup as D

HW = float(os.environ["HW"])
_orig = D.photo_title_pairs
D.photo_title_pairs = lambda *a, **k: _orig(*a, **{**k, "hash_weight": HW})
from samestyle.cli.main import cli  # noqa: E402

sys.exit(cli())
