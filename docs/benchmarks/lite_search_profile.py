"""Where one Milvus Lite search call spends its time (the profile quoted under "scale").

Builds a collection in the product layout with N synthetic rows (as `samestyle bench
scale` does), then runs 50 single-query searches and one call of 50 queries. Run it
under a sampling profiler, which sees the in-process Milvus Lite server threads:

    pip install py-spy
    py-spy record -r 50 -f raw -o /tmp/search.txt -- .venv/bin/python docs/benchmarks/lite_search_profile.py 100000

and sum the samples by function (the search path is milvus_lite/search/executor_indexed.py).
"""

import sys
import tempfile
import time

from samestyle import contract as C
from samestyle.bench import scale as S
from samestyle.store.collections import client as milvus_client

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
cfg = S.ScaleConfig()
spec, prof, create, index_params = S._layout(cfg)
vf = spec.vector_fields
c = milvus_client(tempfile.mkdtemp() + "/milvus.db")
c.create_collection("t", **create)
for start, m in S.batches(n, cfg.batch):
    vecs = {vf[v]: S.unit_vectors(cfg.seed, k, start, m, cfg.dim) for k, v in enumerate(C.VIEWS)}
    c.insert("t", S._rows(spec, start, m, vecs))
c.flush("t")
c.create_index("t", index_params)
c.load_collection("t")
q = S.unit_vectors(1, 2, 0, 55, cfg.dim)
sp = {"metric_type": C.METRIC, "params": dict(prof.search_params)}
for x in q[:5]:  # warm-up
    c.search("t", data=[x.tolist()], anns_field=vf["fused"], limit=10, search_params=sp)
t = time.perf_counter()
for x in q[5:]:
    c.search("t", data=[x.tolist()], anns_field=vf["fused"], limit=10, search_params=sp)
print(f"{n} rows: one query per call {(time.perf_counter() - t) / 50 * 1000:.1f} ms")
t = time.perf_counter()
c.search("t", data=q[5:].tolist(), anns_field=vf["fused"], limit=10, search_params=sp)
print(f"{n} rows: 50 queries in one call {(time.perf_counter() - t) / 50 * 1000:.1f} ms per query")
