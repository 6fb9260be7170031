# syntax=docker/dockerfile:1
# samestyle application image: the CLI and the HTTP API, talking to a Milvus server or
# cluster (SAMESTYLE_MILVUS_URI) and to a Triton server (SAMESTYLE_TRITON_URL); it
# runs neither itself. Build from the repository root:
#
#   docker build -f docker/samestyle.Dockerfile -t samestyle:0.1.0 .
#
# Default command: the HTTP API on port 8080. Any verb works in its place:
#   docker run --rm samestyle:0.1.0 ingest /catalogue/products.csv --json
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SAMESTYLE_DATA_DIR=/data \
    HF_HUB_OFFLINE=1

WORKDIR /app

# torch first, from the CPU wheel index: requirements/app.txt pins torch==2.13.0, which
# the +cpu build satisfies; from PyPI it would pull the multi-GB CUDA build, and this
# image never runs the model on a GPU (Triton does). torch serves export and train.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

# The pinned application requirements, minus the test tools.
COPY requirements/app.txt /tmp/app.txt
RUN grep -vE '^(pytest|testcontainers)' /tmp/app.txt > /tmp/app-runtime.txt \
    && pip install -r /tmp/app-runtime.txt \
    && rm -f /tmp/app.txt /tmp/app-runtime.txt

# The source tree, installed editable (pyproject.toml maps plugin/ to the package
# `samestyle`, loaders/ to samestyle.loaders): milvus/ (collection and index definitions) and
# triton_models/ (the repository skeleton) are read from beside the package.
COPY pyproject.toml ./
COPY plugin ./plugin
COPY loaders ./loaders
COPY requirements ./requirements
COPY milvus ./milvus
COPY triton_models ./triton_models
RUN pip install --no-deps -e . \
    && useradd --create-home --uid 10001 samestyle \
    && mkdir -p /data && chown samestyle /data

USER samestyle
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"

ENTRYPOINT ["samestyle"]
CMD ["serve", "--http-host", "0.0.0.0", "--http-port", "8080", "--no-export"]
