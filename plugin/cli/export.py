"""`samestyle export`: ONNX export of the model, then the Triton model repository."""

from __future__ import annotations

from pathlib import Path

import click

from ..triton_repo import build_repository, default_tuning, with_tuning, repo_manifest
from .common import emit, json_option


@click.command("export")
@click.option("--backend", "flavour", type=click.Choice(["python", "onnxruntime"]), default="python",
              show_default=True, envvar="SAMESTYLE_TRITON_BACKEND",
              help="python: encoders as python-backend models running ONNX Runtime (what the tritonserver of "
                   "nvidia-pytriton loads); onnxruntime: encoders on Triton's native onnxruntime backend (NGC image).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Repository to write. [default: SAMESTYLE_TRITON_REPO, else ./triton_models]")
@click.option("--model", "model_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Model checkpoint directory. [default: SAMESTYLE_MODEL, else the shipped model]")
@click.option("--device", type=click.Choice(["cpu", "gpu"]), default=None,
              help="Where the encoders run (instance_group kind). [default: cpu for python, gpu for onnxruntime]")
@click.option("--instances", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Model instances per encoder.")
@click.option("--queue-delay-us", type=click.IntRange(0, 10_000_000), default=None,
              help="dynamic_batching max_queue_delay_microseconds. [default: 2000]")
@json_option
@click.pass_obj
def command(settings, flavour, out, model_dir, device, instances, queue_delay_us, as_json):
    """Export the model to ONNX and lay out a Triton model repository.

    The ONNX graphs are exported once per model version into build/onnx/ and linked
    into the repository, with the tokenizer and preprocessing constants beside the
    entry model, so the repository is complete and self-contained.

    \b
    samestyle export                                   # ./triton_models, python flavour
    samestyle export --backend onnxruntime --out deploy/triton_models
    """
    from ..export import ensure_onnx
    model_dir = model_dir or settings.model_dir
    out = out or settings.triton_repo
    tuning = default_tuning(flavour)
    kw = {"instances": instances}
    if device:
        kw["kind"] = "KIND_GPU" if device == "gpu" else "KIND_CPU"
    if queue_delay_us is not None:
        kw["queue_delay_us"] = queue_delay_us
    tuning = with_tuning(tuning, **kw)
    if not as_json:
        click.echo(f"exporting ONNX graphs of {model_dir} (once per model version)...", err=True)
    bundle = ensure_onnx(model_dir)
    repo = build_repository(bundle, out, tuning)
    manifest = repo_manifest(repo) or {}
    emit({"repository": str(repo), "backend": flavour, "kind": tuning.kind, "onnx_bundle": str(bundle),
          "model_version": manifest.get("model_version")}, as_json,
         lambda o: click.echo(f"wrote {o['backend']} repository for {o['model_version']} to {o['repository']}"))
