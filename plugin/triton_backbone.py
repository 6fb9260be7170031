"""One ONNX graph served by ONNX Runtime inside Triton's python backend.

The one source of the `1/model.py` of image_backbone, text_backbone and fusion_encoder:
`samestyle export` (samestyle.triton_repo) writes it into each of them. Never imported
by the app; it runs in the serving environment. Tensor names, dtypes and the graph
come from the model's own config.pbtxt and `1/model.onnx`, so nothing here is specific
to one model. Used in the `python` flavour, where the tritonserver of
nvidia-pytriton has no native onnxruntime backend.

All requests of a dynamic batch are concatenated into one ONNX Runtime call and the
result split back, which is where dynamic batching pays off.
"""

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import onnxruntime as ort

        cfg = json.loads(args["model_config"])
        self.inputs = [(t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in cfg["input"]]
        self.outputs = [t["name"] for t in cfg["output"]]
        params = {k: v["string_value"] for k, v in cfg.get("parameters", {}).items()}
        so = ort.SessionOptions()
        threads = int(params.get("ort_threads", "0") or 0)
        if threads:
            so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", params.get("ort_spinning", "0"))
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}))
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, so, providers=providers)

    def execute(self, requests):
        feeds_per_req = []
        for req in requests:
            feeds_per_req.append({
                name: pb_utils.get_input_tensor_by_name(req, name).as_numpy().astype(dtype, copy=False)
                for name, dtype in self.inputs
            })
        sizes = [len(next(iter(f.values()))) for f in feeds_per_req]
        if len(requests) == 1:
            feeds = feeds_per_req[0]
        else:
            feeds = {name: np.concatenate([f[name] for f in feeds_per_req]) for name, _ in self.inputs}
        try:
            results = self.session.run(self.outputs, feeds)
        except Exception as exc:  # one bad call fails its requests, not the server
            err = pb_utils.TritonError(f"ONNX Runtime failed: {exc}")
            return [pb_utils.InferenceResponse(error=err) for _ in requests]
        responses, start = [], 0
        for n in sizes:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(r[start:start + n]))
                       for name, r in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            start += n
        return responses
