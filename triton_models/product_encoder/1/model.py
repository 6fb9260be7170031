"""product_encoder: the entry model. Photo bytes + title in, three L2-normalised views
out, per-product errors beside them.

Runs in Triton's python backend (serving environment) and calls the encoders through
BLS. It mirrors `samestyle.encoders.onnx.OnnxEncoder.encode_batch` step for step, so the
vectors match the in-process runtime: decode + tokenize here (preprocess.py, copied
in by `samestyle export`, with constants from preprocess.json and tokenizer.json
beside it; nothing is fetched at load), run the image encoder only for products with
a photo and the text encoder only for those with a title, then the fusion encoder
once on the 3B batch of views.

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

    # -- the pipeline ------------------------------------------------------------
    def _encode(self, images: list, texts: list):
        n = len(images)
        t, m = self.names["tensors"], self.names["models"]
        errors = [""] * n
        pixels = {}
        titles = [""] * n
        for i in range(n):
            try:
                titles[i] = pp.clean_title(texts[i], self.consts)
                if images[i]:
                    pixels[i] = pp.decode_image(images[i], self.consts)
                if not titles[i] and i not in pixels:
                    raise pp.PreprocessError("image,text", "product has neither a photo nor a title")
            except pp.PreprocessError as exc:
                errors[i] = str(exc)
                titles[i] = ""
                pixels.pop(i, None)
        img_tok = np.zeros((n, int(self.consts["image_tokens"]), int(self.consts["image_feature_dim"])), np.float32)
        img_mask = np.zeros((n, int(self.consts["image_tokens"])), np.int64)
        enc = pp.tokenize(self.tokenizer, titles)
        txt_tok = np.zeros((n, self.max_len, int(self.consts["text_feature_dim"])), np.float32)
        has_img = sorted(pixels)
        has_text = [i for i, s in enumerate(titles) if s]
        calls, kinds = [], []
        if has_img:  # a text-only batch never reaches the image encoder
            calls.append(self._request(m["image"], {t["pixel_values"]: np.stack([pixels[i] for i in has_img])},
                                       t["image_tokens"]))
            kinds.append("image")
        if has_text:
            sub = {t[k]: enc[k][has_text] for k in ("input_ids", "attention_mask", "token_type_ids")}
            calls.append(self._request(m["text"], sub, t["text_tokens"]))
            kinds.append("text")
        if calls:
            for kind, resp in zip(kinds, self.loop.run_until_complete(self._gather(calls))):
                if kind == "image":
                    img_tok[has_img] = self._output(resp, t["image_tokens"], m["image"])
                    img_mask[has_img] = 1
                else:
                    txt_tok[has_text] = self._output(resp, t["text_tokens"], m["text"])
        if not calls:
            # Every product failed: all views are zero (the fusion encoder's output for
            # fully masked input), so skip the call. This is also what lets the
            # warmup (empty strings) run before the server accepts BLS requests.
            zero = np.zeros((n, self.dim), np.float32)
            return {"fused": zero, "image": zero, "text": zero}, errors
        feeds = pp.view_inputs(img_tok, img_mask, txt_tok, enc["attention_mask"])
        feeds = {t[k]: v for k, v in feeds.items()}
        resp = self._request(m["fusion"], feeds, t["embedding"]).exec()
        views = pp.split_views(self._output(resp, t["embedding"], m["fusion"]))
        return views, errors

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
