"""Settings, built once at the edge (the CLI, the HTTP app, a test fixture) from the
environment and passed down. Nothing below reads os.environ itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
# The repository root when running from a checkout (plugin/ is the package folder);
# in an installed wheel, site-packages. Only checkout-side defaults use it.
ROOT = PACKAGE.parent
IN_CHECKOUT = (ROOT / "pyproject.toml").is_file() and (ROOT / "milvus").is_dir()
DEFAULT_MODEL_DIR = PACKAGE / "model" / "default"


def resource(name: str) -> Path:
    """A data folder the package reads: `milvus` (collection and index definitions),
    `triton_models` (the repository skeleton), `requirements`. A wheel ships them as
    samestyle/_data/<name>; a checkout (editable install) reads <repo>/<name>."""
    packaged = PACKAGE / "_data" / name
    return packaged if packaged.is_dir() else ROOT / name


def cache_dir() -> Path:
    """Where an installed package keeps what it builds once (ONNX export, the Triton
    repository): $SAMESTYLE_CACHE_DIR, else $XDG_CACHE_HOME/samestyle, else ~/.cache/samestyle."""
    if os.environ.get("SAMESTYLE_CACHE_DIR"):
        return Path(os.environ["SAMESTYLE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "samestyle"


def onnx_root() -> Path:
    """Where ONNX bundles are exported: build/onnx of a checkout, else <cache dir>/onnx."""
    return ROOT / "build" / "onnx" if IN_CHECKOUT else cache_dir() / "onnx"


def _default_triton_repo() -> Path:
    return ROOT / "triton_models" if IN_CHECKOUT else cache_dir() / "triton_models"


def _default_serve_python() -> Path:
    return (ROOT if IN_CHECKOUT else Path.cwd()) / ".venv-serve" / "bin" / "python"


PROGRESS_MODES = ("auto", "bar", "lines", "off")  # SAMESTYLE_PROGRESS; samestyle.output draws them

ENV_VARS = {
    "SAMESTYLE_DATA_DIR": "data directory: embedded Milvus Lite file, logs, ingest checkpoints (default ./.samestyle)",
    "SAMESTYLE_MODEL": "model checkpoint directory (default: the shipped model)",
    "SAMESTYLE_MILVUS_URI": "Milvus URI: a .db path (Milvus Lite), http://host:19530 (server or cluster)",
    "SAMESTYLE_MILVUS_TOKEN": "Milvus token (user:password or API key)",
    "SAMESTYLE_MILVUS_PROFILE": "index profile in milvus/indexes.json: lite, hnsw, diskann, gpu_cagra",
    "SAMESTYLE_TRITON_URL": "Triton gRPC host:port; unset = start a local Triton",
    "SAMESTYLE_TRITON_REPO": "Triton model repository (default: triton_models/ of a checkout, else ~/.cache/samestyle/triton_models)",
    "SAMESTYLE_SERVE_PYTHON": "python of the serving environment (default .venv-serve/bin/python of a checkout, else of the working directory)",
    "SAMESTYLE_CACHE_DIR": "where an installed package builds the ONNX export and Triton repository (default ~/.cache/samestyle)",
    "SAMESTYLE_COLLECTION": "collection alias to use (default products)",
    "SAMESTYLE_SEARCH_PROFILES": "JSON file of per-category search weights (default plugin/query/profiles.json)",
    "SAMESTYLE_LOG_LEVEL": "log level (default WARNING)",
    "SAMESTYLE_PROGRESS": "progress of long work on stderr: auto (a bar on a terminal, else nothing), bar, "
                          "lines (a plain line a minute, for a background job's log), off",
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(".samestyle"))
    model_dir: Path = DEFAULT_MODEL_DIR
    milvus_uri: str | None = None
    milvus_token: str | None = None
    milvus_profile: str | None = None
    triton_url: str | None = None
    triton_repo: Path = field(default_factory=_default_triton_repo)
    serve_python: Path = field(default_factory=_default_serve_python)
    collection: str = "products"
    search_profiles: Path | None = None
    log_level: str = "WARNING"
    progress: str = "auto"

    @property
    def embedded_milvus_uri(self) -> str:
        return str(self.data_dir / "milvus.db")

    @property
    def resolved_milvus_uri(self) -> str:
        return self.milvus_uri or self.embedded_milvus_uri

    @property
    def resolved_profile(self) -> str:
        if self.milvus_profile:
            return self.milvus_profile
        uri = self.resolved_milvus_uri
        return "lite" if uri.endswith(".db") or "127.0.0.1" in uri or "localhost" in uri else "hnsw"

    def with_(self, **kw) -> "Settings":
        return replace(self, **{k: v for k, v in kw.items() if v is not None})


def from_env(env: dict | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    kw: dict = {}
    if env.get("SAMESTYLE_DATA_DIR"):
        kw["data_dir"] = Path(env["SAMESTYLE_DATA_DIR"])
    if env.get("SAMESTYLE_MODEL"):
        kw["model_dir"] = Path(env["SAMESTYLE_MODEL"])
    for key, name in [
        ("SAMESTYLE_MILVUS_URI", "milvus_uri"),
        ("SAMESTYLE_MILVUS_TOKEN", "milvus_token"),
        ("SAMESTYLE_MILVUS_PROFILE", "milvus_profile"),
        ("SAMESTYLE_TRITON_URL", "triton_url"),
        ("SAMESTYLE_COLLECTION", "collection"),
        ("SAMESTYLE_LOG_LEVEL", "log_level"),
        ("SAMESTYLE_PROGRESS", "progress"),
    ]:
        if env.get(key):
            kw[name] = env[key]
    if env.get("SAMESTYLE_TRITON_REPO"):
        kw["triton_repo"] = Path(env["SAMESTYLE_TRITON_REPO"])
    if env.get("SAMESTYLE_SEARCH_PROFILES"):
        kw["search_profiles"] = Path(env["SAMESTYLE_SEARCH_PROFILES"])
    if env.get("SAMESTYLE_SERVE_PYTHON"):
        kw["serve_python"] = Path(env["SAMESTYLE_SERVE_PYTHON"])
    s = Settings(**kw)
    if s.milvus_profile and s.milvus_profile not in ("lite", "hnsw", "diskann", "gpu_cagra"):
        raise ConfigError(
            f"SAMESTYLE_MILVUS_PROFILE is [{s.milvus_profile}]",
            fix="use one of lite, hnsw, diskann, gpu_cagra",
        )
    if s.progress not in PROGRESS_MODES:
        raise ConfigError(f"SAMESTYLE_PROGRESS is [{s.progress}]", fix=f"use one of {', '.join(PROGRESS_MODES)}")
    return s
