# syntax=docker/dockerfile:1
# Triton serving image: the NGC tritonserver base (CUDA, the onnxruntime and python
# backends) with samestyle's model repository copied in. Build it from the repository
# root after writing the repository in the onnxruntime flavour (encoders on Triton's
# native onnxruntime backend, instance groups on the GPU):
#
#   samestyle export --backend onnxruntime --out build/model_repository
#   docker build -f docker/triton.Dockerfile -t samestyle-triton:0.1.0 .
#
# 24.12 is Triton 2.53 (the local tritonserver of nvidia-pytriton is 2.51). It is the
# first NGC release on Ubuntu 24.04 with Python 3.12; 24.10 (Triton 2.51) ships Python
# 3.10, for which the serving pins below (pillow 13, onnxruntime 1.31) have no wheels.
# The config.pbtxt files use nothing newer than 2.51, so local and image agree.
FROM nvcr.io/nvidia/tritonserver:24.12-py3

# Where the exported repository is, relative to the build context.
ARG MODEL_REPO=build/model_repository

# The python-backend model (product_encoder: decode, resize, tokenize) runs in the
# image's system python. Same pins as the local serving environment, so preprocessing
# gives the same numbers on both sides, minus nvidia-pytriton (its tritonserver is
# this image's). Ubuntu 24.04 marks the system python externally managed; this image
# has one purpose, hence --break-system-packages.
COPY requirements/serve.txt /tmp/serve.txt
RUN (python3 -m pip --version >/dev/null 2>&1 \
        || (apt-get update && apt-get install -y --no-install-recommends python3-pip \
            && rm -rf /var/lib/apt/lists/*)) \
    && grep -v '^nvidia-pytriton' /tmp/serve.txt > /tmp/serve-ngc.txt \
    && python3 -m pip install --no-cache-dir --break-system-packages -r /tmp/serve-ngc.txt \
    && rm -f /tmp/serve.txt /tmp/serve-ngc.txt

# The model repository, copied so the image is self-contained (compose may mount a
# newer one over /models instead; see docs/deploy.md).
COPY ${MODEL_REPO} /models

# Fail the build, not the deployment, on a repository of the wrong flavour: the python
# flavour runs its encoders on the CPU through python models and wastes the GPU.
RUN test -f /models/product_encoder/config.pbtxt \
    || { echo "no product_encoder in ${MODEL_REPO}: run samestyle export --backend onnxruntime --out ${MODEL_REPO}" >&2; exit 1; } \
    ; grep -q 'platform: "onnxruntime_onnx"' /models/image_backbone/config.pbtxt \
    || { echo "${MODEL_REPO} is not the onnxruntime flavour: re-export with --backend onnxruntime" >&2; exit 1; }

# 8000 HTTP (health), 8001 gRPC (what samestyle talks), 8002 Prometheus metrics.
EXPOSE 8000 8001 8002

HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=5 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=4)"

CMD ["tritonserver", "--model-repository=/models", "--exit-on-error=true", "--strict-readiness=true"]
