"""Settings, built once at the edge (the CLI, the HTTP app, a test fixture) from the
environment and passed down. Nothing below reads os.environ itself."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "model" / "default"

ENV_VARS = {
    "SAMESTYLE_DATA_DIR": "data directory: embedded Milvus Lite file, logs, ingest checkpoints (default ./.samestyle)",
    "SAMESTYLE_MODEL": "model checkpoint directory (default: the shipped model)",
    "SAMESTYLE_MILVUS_URI": "Milvus URI: a .db path (Milvus Lite), http://host:19530 (server or cluster)",
    "SAMESTYLE_MILVUS_TOKEN": "Milvus token (user:password or API key)",
    "SAMESTYLE_MILVUS_PROFILE": "index profile in milvus/indexes.json: lite, hnsw, diskann, gpu_cagra",
    "SAMESTYLE_TRITON_URL": "Triton gRPC host:port; unset = start a local Triton",
    "SAMESTYLE_TRITON_REPO": "Triton model repository (default ./triton_models)",
    "SAMESTYLE_SERVE_PYTHON": "python of the serving environment (default ./.venv-serve/bin/python)",
    "SAMESTYLE_COLLECTION": "collection alias to use (default products)",
    "SAMESTYLE_SEARCH_PROFILES": "JSON file of per-category search weights (default plugin/query/profiles.json)",
    "SAMESTYLE_LOG_LEVEL": "log level (default WARNING)",
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path(".samestyle"))
    model_dir: Path = DEFAULT_MODEL_DIR
    milvus_uri: str | None = None
    milvus_token: str | None = None
    milvus_profile: str | None = None
    triton_url: str | None = None
    triton_repo: Path = ROOT / "triton_models"
    serve_python: Path = ROOT / ".venv-serve" / "bin" / "python"
    collection: str = "products"
    search_profiles: Path | None = None
    log_level: str = "WARNING"

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
    return s
