"""The Triton model repository against plugin/contract.py: every committed
config.pbtxt is the builder's output and parses with Triton's own schema; names,
dims and batching agree with the contract and with the exported ONNX graphs; the
onnxruntime flavour has the same interface."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from samestyle import contract as C
from samestyle.config import DEFAULT_MODEL_DIR, ROOT
from samestyle.model.checkpoint import read_manifest
from samestyle.model.manifest import image_feature_dim
from samestyle.triton_repo import (BACKBONE_SRC, ENTRY_FILES, ONNX_SOURCES, SKELETON, backbone_model_py,
                                build_repository, default_tuning, missing_files, model_configs,
                                strip_dynamic_batching, with_tuning, without_dynamic_batching)

MANIFEST = read_manifest(DEFAULT_MODEL_DIR)
D, L = MANIFEST["embed_dim"], MANIFEST["max_text_len"]
FI = image_feature_dim(MANIFEST)  # the head map's channels, plus the colour histogram's for a grey-colour model
MODELS = [C.ENTRY_MODEL, C.IMAGE_MODEL, C.TEXT_MODEL, C.FUSION_MODEL]
FP32, INT64, STRING = mc.TYPE_FP32, mc.TYPE_INT64, mc.TYPE_STRING

# model -> (max batch, inputs, outputs) written out from the contract by hand, so a
# builder bug cannot hide behind itself.
EXPECTED = {
    C.ENTRY_MODEL: (C.MAX_BATCH, {C.IN_IMAGE: (STRING, [1]), C.IN_TEXT: (STRING, [1])},
                    {C.OUT_IMAGE: (FP32, [D]), C.OUT_TEXT: (FP32, [D]), C.OUT_FUSED: (FP32, [D]),
                     C.OUT_ERROR: (STRING, [1])}),
    C.IMAGE_MODEL: (C.MAX_BATCH, {C.T_PIXEL_VALUES: (FP32, [3, C.IMAGE_SIZE, C.IMAGE_SIZE])},
                    {C.T_IMAGE_TOKENS: (FP32, [C.IMAGE_TOKENS, FI])}),
    C.TEXT_MODEL: (C.MAX_BATCH, {C.T_INPUT_IDS: (INT64, [L]), C.T_ATTENTION_MASK: (INT64, [L]),
                                 C.T_TOKEN_TYPE_IDS: (INT64, [L])},
                   {C.T_TEXT_TOKENS: (FP32, [L, C.TEXT_FEATURE_DIM])}),
    C.FUSION_MODEL: (C.FUSION_MAX_BATCH, {C.T_IMAGE_TOKENS: (FP32, [C.IMAGE_TOKENS, FI]),
                                          C.T_IMAGE_MASK: (INT64, [C.IMAGE_TOKENS]),
                                          C.T_TEXT_TOKENS: (FP32, [L, C.TEXT_FEATURE_DIM]),
                                          C.T_ATTENTION_MASK: (INT64, [L])},
                     {C.T_EMBEDDING: (FP32, [D])}),
}


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def committed(name: str) -> str:
    return (SKELETON / name / "config.pbtxt").read_text()


@pytest.mark.parametrize("name", MODELS)
def test_committed_config_is_the_builders_output(name):
    assert committed(name) == model_configs(MANIFEST)[name], (
        f"triton_models/{name}/config.pbtxt is stale: run `samestyle export`")


def test_no_model_outside_the_contract():
    dirs = sorted(p.name for p in SKELETON.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    assert dirs == sorted(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_committed_config_matches_the_contract(name):
    cfg = parse(committed(name))
    max_batch, inputs, outputs = EXPECTED[name]
    assert cfg.name == name and cfg.backend == "python"
    assert cfg.max_batch_size == max_batch
    assert {t.name: (t.data_type, list(t.dims)) for t in cfg.input} == inputs
    assert {t.name: (t.data_type, list(t.dims)) for t in cfg.output} == outputs
    assert cfg.HasField("dynamic_batching")
    pref = list(cfg.dynamic_batching.preferred_batch_size)
    assert pref and all(1 <= p <= max_batch for p in pref) and pref == sorted(pref)
    assert cfg.dynamic_batching.max_queue_delay_microseconds > 0
    assert [g.kind for g in cfg.instance_group] == [mc.ModelInstanceGroup.KIND_CPU]
    assert cfg.instance_group[0].count >= 1
    (warm,) = cfg.model_warmup
    assert set(warm.inputs) == set(inputs) and warm.batch_size >= 1
    assert cfg.parameters["model_version"].string_value == MANIFEST["model_version"]


def test_backbone_model_py_is_generated_from_one_source(triton_repo):
    """image/text/fusion model.py: plugin/triton_backbone.py under a header, written by
    export and never committed (so no copy can drift)."""
    want = backbone_model_py()
    assert want.endswith(BACKBONE_SRC.read_text()) and want.startswith("# Generated")
    compile(want, "model.py", "exec")
    for m in ONNX_SOURCES:
        assert (triton_repo / m / "1" / "model.py").read_text() == want, m
    paths = [f"triton_models/{m}/1/model.py" for m in ONNX_SOURCES]
    tracked = subprocess.run(["git", "ls-files", "--", *paths], cwd=ROOT, capture_output=True, text=True).stdout
    assert not tracked.split(), f"committed copies of the generated backbone model.py: {tracked.split()}"


def test_onnx_graphs_have_the_configs_interface(onnx_bundle):
    import onnx

    for name, fname in ONNX_SOURCES.items():
        g = onnx.load(str(onnx_bundle / fname), load_external_data=False).graph
        _, inputs, outputs = EXPECTED[name]
        for values, want in ((g.input, inputs), (g.output, outputs)):
            # A symbolic (dynamic) axis in the graph accepts whatever the config fixes.
            got = {v.name: [d.dim_value if d.HasField("dim_value") else None
                            for d in v.type.tensor_type.shape.dim][1:] for v in values}
            assert set(got) == set(want), f"{fname} vs {name}/config.pbtxt"
            for k, (_, dims) in want.items():
                assert len(got[k]) == len(dims), f"{fname}:{k}"
                assert all(g in (None, d) for g, d in zip(got[k], dims)), f"{fname}:{k} {got[k]} vs {dims}"


def test_generated_files_are_gitignored(triton_repo):
    written = [p.relative_to(triton_repo) for p in triton_repo.rglob("*") if p.is_file()]
    committed = [Path(m) / "config.pbtxt" for m in MODELS] + [Path(C.ENTRY_MODEL) / "1" / "model.py"]
    generated = [str(Path("triton_models") / p) for p in written if p not in committed]
    assert generated
    res = subprocess.run(["git", "check-ignore", "--no-index", *generated], cwd=ROOT, capture_output=True, text=True)
    ignored = set(res.stdout.split())
    assert ignored == set(generated), f"not ignored: {set(generated) - ignored}"


def test_built_repository_is_complete(triton_repo):
    assert missing_files(triton_repo) == []
    entry = triton_repo / C.ENTRY_MODEL / "1"
    assert all((entry / f).exists() for f in ENTRY_FILES)
    names = json.loads((entry / "contract.json").read_text())
    assert names["models"] == {"image": C.IMAGE_MODEL, "text": C.TEXT_MODEL, "fusion": C.FUSION_MODEL}
    assert names["outputs"]["error"] == C.OUT_ERROR and names["embed_dim"] == D
    assert (entry / "preprocess.py").read_text() == (ROOT / "plugin" / "model" / "preprocess.py").read_text()
    # The entry model runs the in-process encoder's own steps.
    assert (entry / "batch.py").read_text() == (ROOT / "plugin" / "encoders" / "batch.py").read_text()
    assert "import batch" in (entry / "model.py").read_text()


def test_missing_onnx_is_reported(triton_repo, tmp_path):
    repo = without_dynamic_batching(triton_repo, tmp_path / "repo")
    (repo / C.TEXT_MODEL / "1" / "model.onnx").unlink()
    assert missing_files(repo) == [f"{C.TEXT_MODEL}/1/model.onnx"]


def test_onnxruntime_flavour_export(tmp_path):
    from click.testing import CliRunner

    from samestyle.cli.main import cli

    out = tmp_path / "ngc"
    res = CliRunner().invoke(cli, ["export", "--backend", "onnxruntime", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["backend"] == "onnxruntime" and info["kind"] == "KIND_GPU"
    assert missing_files(out) == []
    for name in MODELS:
        cfg = parse((out / name / "config.pbtxt").read_text())
        max_batch, inputs, outputs = EXPECTED[name]
        assert cfg.max_batch_size == max_batch
        assert {t.name: (t.data_type, list(t.dims)) for t in cfg.input} == inputs
        assert {t.name: (t.data_type, list(t.dims)) for t in cfg.output} == outputs
        assert cfg.HasField("dynamic_batching") and len(cfg.model_warmup) == 1
        if name == C.ENTRY_MODEL:
            assert cfg.backend == "python" and cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        else:
            assert cfg.platform == "onnxruntime_onnx" and not cfg.backend
            assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
            assert (out / name / "1" / "model.onnx").exists() and not (out / name / "1" / "model.py").exists()


def test_onnxruntime_flavour_refuses_the_committed_skeleton(onnx_bundle):
    from samestyle.errors import ConfigError

    with pytest.raises(ConfigError, match="--out"):
        build_repository(onnx_bundle, SKELETON, default_tuning("onnxruntime"))


def test_without_dynamic_batching_only_drops_that_block():
    for name, text in model_configs(MANIFEST).items():
        a, b = parse(text), parse(strip_dynamic_batching(text))
        assert not b.HasField("dynamic_batching")
        a.ClearField("dynamic_batching")
        assert a == b, name


def test_tuning_is_checked():
    from samestyle.errors import ConfigError

    for bad in ({"flavour": "tensorrt"}, {"kind": "KIND_TPU"}, {"instances": 0}, {"queue_delay_us": -1}):
        with pytest.raises(ConfigError):
            with_tuning(default_tuning(), **bad)
