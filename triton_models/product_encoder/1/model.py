"""product_encoder: the entry model. Photo bytes + title in, three L2-normalised views
out, per-product errors beside them.

Runs in Triton's python backend (serving environment) and calls the encoders through
BLS. The steps are `batch.encode_batch`, the same function the in-process
`samestyle.encoders.onnx.OnnxEncoder` runs (plugin/encoders/batch.py, copied in by
`samestyle export` with preprocess.py, preprocess.json and tokenizer.json beside it;
nothing is fetched at load), so the vectors match: decode + tokenize, the image encoder
only for products with a photo and the text encoder only for those with a title (here
both at once), then the fusion encoder once on the 3B batch of views. This file only
supplies those three calls and turns Triton requests into a batch and back.

A product whose photo cannot be decoded, or that has neither photo nor title, gets
zero vectors and its reason in `error` ("field: reason"); the rest of the batch is
unaffected. Names of models and tensors come from contract.json (written by export
from plugin/contract.py), as this environment cannot import the app.
"""

import asyncio
import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils

import batch
import preprocess as pp


class TritonPythonModel:
    def initialize(self, args):
        here = os.path.join(args["model_repository"], args["model_version"])
        with open(os.path.join(here, "preprocess.json")) as f:
            self.consts = json.load(f)
        with open(os.path.join(here, "contract.json")) as f:
            self.names = json.load(f)
        self.max_len = int(self.consts["max_text_len"])
        self.tokenizer = pp.load_tokenizer(os.path.join(here, "tokenizer.json"), self.max_len)
        self.dim = int(self.names["embed_dim"])
        # One private loop to await the image and text encoders concurrently.
        self.loop = asyncio.new_event_loop()

    # -- BLS helpers -------------------------------------------------------------
    def _request(self, model: str, feeds: dict, output: str):
        inputs = [pb_utils.Tensor(k, np.ascontiguousarray(v)) for k, v in feeds.items()]
        return pb_utils.InferenceRequest(model_name=model, requested_output_names=[output], inputs=inputs)

    @staticmethod
    def _output(response, output: str, model: str) -> np.ndarray:
        if response.has_error():
            raise RuntimeError(f"{model} failed: {response.error().message()}")
        return pb_utils.get_output_tensor_by_name(response, output).as_numpy()

    async def _gather(self, calls):
        return await asyncio.gather(*[req.async_exec() for req in calls])

    # -- the pipeline: batch.encode_batch with BLS calls ---------------------------
    def _run_backbones(self, pixel_values, text_inputs):
        t, m = self.names["tensors"], self.names["models"]
        calls, kinds = [], []
        if pixel_values is not None:  # a text-only batch never reaches the image encoder
            calls.append(self._request(m["image"], {t["pixel_values"]: pixel_values}, t["image_tokens"]))
            kinds.append("image")
        if text_inputs is not None:
            calls.append(self._request(m["text"], {t[k]: v for k, v in text_inputs.items()}, t["text_tokens"]))
            kinds.append("text")
        out = {"image": None, "text": None}
        for kind, resp in zip(kinds, self.loop.run_until_complete(self._gather(calls))):
            key = "image_tokens" if kind == "image" else "text_tokens"
            out[kind] = self._output(resp, t[key], m[kind])
        return out["image"], out["text"]

    def _run_fusion(self, feeds):
        t, m = self.names["tensors"], self.names["models"]
        resp = self._request(m["fusion"], {t[k]: v for k, v in feeds.items()}, t["embedding"]).exec()
        return self._output(resp, t["embedding"], m["fusion"])

    def _encode(self, images: list, texts: list):
        views, errors = batch.encode_batch(images, texts, self.consts, self.tokenizer, self.dim,
                                           self._run_backbones, self._run_fusion)
        return views, ["" if e is None else str(e) for e in errors]

    def execute(self, requests):
        ins, outs = self.names["inputs"], self.names["outputs"]
        images, texts, sizes = [], [], []
        for req in requests:
            im = pb_utils.get_input_tensor_by_name(req, ins["image"]).as_numpy().reshape(-1)
            tx = pb_utils.get_input_tensor_by_name(req, ins["text"]).as_numpy().reshape(-1)
            images += [bytes(x) for x in im]
            texts += [bytes(x) for x in tx]
            sizes.append(len(im))
        try:
            views, errors = self._encode(images, texts)
        except Exception as exc:  # an encoder failed: fail these requests, keep serving
            err = pb_utils.TritonError(f"product_encoder: {exc}")
            return [pb_utils.InferenceResponse(error=err) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            sl = slice(start, start + n)
            tensors = [pb_utils.Tensor(outs[v], np.ascontiguousarray(views[v][sl], dtype=np.float32))
                       for v in ("image", "text", "fused")]
            err = np.array([[e.encode("utf-8")] for e in errors[sl]], dtype=np.object_).reshape(n, 1)
            tensors.append(pb_utils.Tensor(outs["error"], err))
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses

    def finalize(self):
        self.loop.close()
