"""Serving cost of the photo input (docs/model.md, runs 9 and 10): images per second through
the image backbone graph, `rgb` against `grey-colour`, exported from the ImageNet weights as
`samestyle export` exports them, run with ONNX Runtime (2 threads, 64 random photos a call,
the two graphs interleaved so both see the same machine load; median of 14 calls).

    .venv/bin/python docs/benchmarks/photo_input_speed.py [OUT.json]
"""
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from samestyle import contract as C
from samestyle.model.backbones import ImageBackbone
from samestyle.model.onnx import export_graph, session

BATCH, CALLS, THREADS = 64, 14, 2


def main(out: str | None = None) -> None:
    tmp = Path(tempfile.mkdtemp())
    sessions = {}
    for pi in C.PHOTO_INPUTS:
        path = tmp / f"{pi}.onnx"
        export_graph(ImageBackbone(photo_input=pi), (torch.zeros(2, 3, C.IMAGE_SIZE, C.IMAGE_SIZE),), path,
                     [C.T_PIXEL_VALUES], [C.T_IMAGE_TOKENS], {C.T_PIXEL_VALUES: {0: "b"}, C.T_IMAGE_TOKENS: {0: "b"}})
        sessions[pi] = session(path, THREADS)
    x = np.random.default_rng(0).uniform(-1, 1, (BATCH, 3, C.IMAGE_SIZE, C.IMAGE_SIZE)).astype(np.float32)
    seconds = {pi: [] for pi in C.PHOTO_INPUTS}
    for _ in range(CALLS):
        for pi, s in sessions.items():
            t = time.perf_counter()
            s.run(None, {C.T_PIXEL_VALUES: x})
            seconds[pi].append(time.perf_counter() - t)
    rate = {pi: round(BATCH / float(np.median(v)), 1) for pi, v in seconds.items()}
    report = {"photos_per_second": rate, "ratio": round(rate[C.PHOTO_GREY_COLOUR] / rate[C.PHOTO_INPUT], 3),
              "batch": BATCH, "calls": CALLS, "threads": THREADS}
    print(json.dumps(report))
    if out:
        Path(out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
