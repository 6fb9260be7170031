"""How far a stage-1 tower's frozen stem is from the shipped model's: the largest
absolute difference per tensor, over the tensors the shipped image_stem holds.

    .venv/bin/python docs/benchmarks/stem_diff.py build/runs/photo-tower/image_backbone.pth

(docs/model.md, "Retrained by make train-default itself": 135 of 270 tensors differ, by up to 9.4e-3.)"""

import sys

import torch
from safetensors.torch import load_file

tower = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
stem = load_file(sys.argv[2] if len(sys.argv) > 2 else "plugin/model/default/image_stem.safetensors")
diffs = {k: (tower[k.removeprefix("net.")].float() - v.float()).abs().max().item() for k, v in stem.items()}
moved = {k: d for k, d in diffs.items() if d > 0}
print(f"{len(diffs)} stem tensors compared, {len(moved)} differ, largest difference "
      f"{max(diffs.values()):.2e}" + (f" ({max(moved, key=moved.get)})" if moved else ""))
