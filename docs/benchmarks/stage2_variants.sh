#!/bin/bash
# Stage 2 on the shipped stage-1 tower (build/runs/photo-tower, `make train-photo-tower`), run 15's
# recipe with one change each (issue 17, stop 34). Run from the repository root: bash docs/benchmarks/stage2_variants.sh
set -x
mkdir -p build
M=../shared/datasets/myntra/products.csv
R="--label-col style_group --colour-col baseColour --heldout 0.27 --batch-size 192 --loss infonce --temperature 0.2 --self-temperature 0.05 --w-self 0.3 --w-image 0.3 --w-local 0.1 --mod-target image --mod-temperature 0.1 --tail-lr 2e-4 --w-local-image 1.0 --colour-dims 32 --colour-weight 0.35 --w-colour 0.5 --self-colour-negatives --photo-input grey-colour --colour-from-histogram --threads 2"
run() { name=$1; shift
  s=$(date +%s)
  nice -n 15 .venv/bin/samestyle train $M $R "$@" --image-weights build/runs/photo-tower/image_backbone.pth --out build/runs/$name > build/$name-train.log 2>&1
  t=$(date +%s); echo "$name train $((t-s)) s"
  nice -n 15 .venv/bin/samestyle eval $M --label-col style_group --colour-col baseColour --model build/runs/$name --encoder local --threads 2 --out docs/benchmarks/model-eval-$name.json --json > build/$name-eval.log 2>&1
  echo "$name eval $(( $(date +%s)-t )) s"
}
[ "${STEPS1800:-0}" = 1 ] || run v17-mod06 --steps 600 --w-mod 0.6
[ "${STEPS1800:-0}" = 1 ] || run v17-steps1200 --steps 1200 --w-mod 0.3
# Third, with STEPS1800=1 (the first two skipped): 1,800 steps.
if [ "${STEPS1800:-0}" = 1 ]; then run v17-steps1800 --steps 1800 --w-mod 0.3; fi
