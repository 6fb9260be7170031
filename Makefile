# samestyle: `make demo` and `make test` do all set-up on a fresh machine.
# `make setup` is idempotent: environments, packages, the Triton python-backend stub,
# and the ONNX export of the shipped model into triton_models/.

PYTHON ?= python3
VENV   := .venv
SERVE  := .venv-serve
BIN    := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup demo test test-quick export train-default train-photo-tower train-heldout-category eval-default bench clean

CHROMIUM := /usr/bin/chromium

setup: $(VENV)/.installed $(SERVE)/.installed triton_models/.exported $(CHROMIUM)

# Debian's Chromium for the browser tests (tests/integration/test_web_page.py drives it
# with Playwright through executable_path; `playwright install` is never run). Skipped
# when it is there; CI runs as root with no stdin. Without apt-get (not Debian) the
# browser tests skip, saying why.
$(CHROMIUM):
	@if command -v apt-get >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver; \
	else echo "no apt-get: install Chromium at $(CHROMIUM) for the browser tests"; fi

$(VENV)/.installed: requirements/app.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# setuptools >= 77 builds the package (SPDX license string; --no-build-isolation below uses this one)
	$(BIN)/pip install -q --upgrade pip "setuptools>=77"
	# torch alone first, exactly pinned: 2.13.0 is the CPU wheel (a looser pin pulls a CUDA build)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements/app.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(SERVE)/.installed: requirements/serve.txt
	test -x $(SERVE)/bin/python || $(PYTHON) -m venv $(SERVE)
	$(SERVE)/bin/pip install -q --upgrade pip
	$(SERVE)/bin/pip install -q -r requirements/serve.txt
	# the wheel's tritonserver finds the python-backend stub beside libtriton_python.so
	site=$$($(SERVE)/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  cp -f $$site/pytriton/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub \
	        $$site/pytriton/tritonserver/backends/python/
	touch $@

# Re-export when the shipped model or the exporter changes (ONNX files are not committed).
triton_models/.exported: $(VENV)/.installed plugin/model/default/manifest.json plugin/export.py plugin/triton_repo.py \
		plugin/model/preprocess.py plugin/model/onnx.py plugin/encoders/batch.py plugin/triton_backbone.py
	$(BIN)/samestyle export --backend python --out triton_models
	touch $@

export: $(VENV)/.installed
	$(BIN)/samestyle export --backend python --out triton_models && touch triton_models/.exported

demo: setup
	$(BIN)/samestyle demo

test: setup
	$(BIN)/python -m pytest -q

# Two pytest-xdist workers, one test file each at a time (a module's fixtures are built once);
# session fixtures (the ingested catalogue, the ONNX encoder) are built once per worker.
test-quick: setup
	$(BIN)/python -m pytest -q -m "not slow and not myntra" -n 2 --dist loadfile

# Long jobs, documented in docs/model.md and docs/benchmarks/README.md.
MYNTRA ?= ../shared/datasets/myntra/products.csv
# The shipped model (docs/model.md, model v2 run 15), two stages. 1: the whole-tower photo
# fine-tune, each photo also pulled to its own title (make train-photo-tower, ~45-70 min here,
# 2 threads; scored against the raw backbone in ~10 min more). 2: the fusion encoder + the
# photo tower's last block on that tower's frozen stem:
# colour kept apart in the last 32 dims, the modifier term against the photo view, a heavy photo
# locality term; the photo tower sees the photo's luminance and the photo view's colour part is
# read from a colour histogram (--colour-from-histogram). ~15 min of training on idle cores
# (2 threads), after the one-off stem/title feature cache (~5-10 min idle).
DEFAULT_RECIPE = --label-col style_group --colour-col baseColour --heldout 0.27 \
	    --steps 600 --batch-size 192 --loss infonce --temperature 0.2 --self-temperature 0.05 \
	    --w-self 0.3 --w-image 0.3 --w-local 0.1 --w-mod 0.3 --mod-target image --mod-temperature 0.1 \
	    --tail-lr 2e-4 --w-local-image 1.0 --colour-dims 32 --colour-weight 0.35 --w-colour 0.5 \
	    --self-colour-negatives --photo-input grey-colour --colour-from-histogram --threads 2
# Stage 1, on the same held-out split as DEFAULT_RECIPE.
PHOTO_TUNE_RECIPE = --label-col style_group --heldout 0.27 --steps 1000 --batch-pairs 48 --size 128 --threads 2 \
	    --w-title 0.5
PHOTO_TOWER = build/runs/photo-tower
# A tower is reused only when its recipe stamp matches PHOTO_TUNE_RECIPE (a tower trained by an
# older recipe is retrained, resuming nothing: photo-tune resumes only a state of the same config).
train-photo-tower: setup
	$(BIN)/samestyle bench photo-tune $(MYNTRA) $(PHOTO_TUNE_RECIPE) --out-dir $(PHOTO_TOWER) --json
	echo '$(PHOTO_TUNE_RECIPE)' > $(PHOTO_TOWER)/recipe
train-default: setup
	test -f $(PHOTO_TOWER)/image_backbone.pth && [ "$$(cat $(PHOTO_TOWER)/recipe 2>/dev/null)" = '$(PHOTO_TUNE_RECIPE)' ] \
	    || $(MAKE) train-photo-tower
	$(BIN)/samestyle train $(MYNTRA) $(DEFAULT_RECIPE) --image-weights $(PHOTO_TOWER)/image_backbone.pth \
	    --out plugin/model/default
	$(BIN)/samestyle export --backend python --out triton_models
# The generalisation check: both stages without Footwear, evaluated on Footwear.
train-heldout-category: setup
	$(BIN)/samestyle bench photo-tune $(MYNTRA) $(PHOTO_TUNE_RECIPE) --exclude masterCategory=Footwear \
	    --out-dir $(PHOTO_TOWER)-no-footwear --json
	$(BIN)/samestyle train $(MYNTRA) $(DEFAULT_RECIPE) --exclude masterCategory=Footwear \
	    --image-weights $(PHOTO_TOWER)-no-footwear/image_backbone.pth --out build/runs/no-footwear
	$(BIN)/samestyle eval $(MYNTRA) --label-col style_group --colour-col baseColour --model build/runs/no-footwear \
	    --encoder local --json
eval-default: setup
	$(BIN)/samestyle eval $(MYNTRA) --label-col style_group --colour-col baseColour --encoder local --json

clean:
	rm -rf build .samestyle .pytest_cache triton_models/.exported
