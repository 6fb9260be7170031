"""Experiment (stop 32): `samestyle bench heal --child milvus`'s scenario N times (argv[1]),
printing, per run, the product searches answered with anything but 200 or 503 (the
502 store_error race on scipy.sparse's import that failed CI). Run from the repo root:
`.venv/bin/python docs/benchmarks/heal_repeat.py 8`."""
import json
import sys
import tempfile
from pathlib import Path

from samestyle.bench.heal import run

for i in range(int(sys.argv[1])):
    with tempfile.TemporaryDirectory() as d:
        r = run(Path(d), "milvus", clients=8)
    bad = [a for a in r["_answers"] if a["kind"] == "product" and a["status"] not in (200, 503)]
    print(i, "answers other than 200/503:", json.dumps(bad)[:1500], flush=True)
