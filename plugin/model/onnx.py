"""The model's ONNX graphs: writing them (torch -> .onnx, named inputs/outputs, a
dynamic batch axis) and opening them (ONNX Runtime sessions). The one place both
training (feature caching) and the serving side (samestyle.export, the in-process
encoder) get them from; torch and onnxruntime are imported only when used."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

from .. import contract as C

OPSET = 17


def export_graph(module, args, path: Path, inputs, outputs, dynamic) -> None:
    """`module` traced with `args` into an ONNX file at `path`."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, args, str(path), input_names=list(inputs), output_names=list(outputs),
            dynamic_axes=dynamic, opset_version=OPSET, dynamo=False, do_constant_folding=True,
        )


def export_text_backbone(tb, out: Path, max_len: int = C.MAX_TEXT_LEN) -> None:
    """The text backbone `tb` (a backbones.TextBackbone) as an ONNX graph, with its
    tokenizer.json, into `out`."""
    import torch

    batch = {0: "batch"}
    ids = torch.ones(2, max_len, dtype=torch.long)
    with torch.no_grad():
        export_graph(tb, (ids, torch.ones_like(ids), torch.zeros_like(ids)), out / C.ONNX_TEXT_BACKBONE,
                     [C.T_INPUT_IDS, C.T_ATTENTION_MASK, C.T_TOKEN_TYPE_IDS], [C.T_TEXT_TOKENS],
                     {C.T_INPUT_IDS: batch, C.T_ATTENTION_MASK: batch, C.T_TOKEN_TYPE_IDS: batch,
                      C.T_TEXT_TOKENS: batch})
    shutil.copyfile(tb.tokenizer_file, out / "tokenizer.json")


def session(path: Path, threads: int | None):
    """An ONNX Runtime session on `path` (CUDA when this onnxruntime has it)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
    so.inter_op_num_threads = 1
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), so, providers=providers)
