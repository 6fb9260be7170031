"""Shared fixtures. Each area keeps its fixtures in tests/fixtures/<area>.py; they are
all loaded here so any test can use any fixture."""

from __future__ import annotations

import os
import pkgutil
from pathlib import Path

import pytest

import tests.fixtures as _fx

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest_plugins = [f"tests.fixtures.{m.name}" for m in pkgutil.iter_modules(_fx.__path__)]

ROOT = Path(__file__).resolve().parent.parent
MYNTRA = ROOT.parent / "shared" / "datasets" / "myntra"


@pytest.fixture(scope="session")
def myntra_dir() -> Path:
    if not (MYNTRA / "products.csv").exists():
        pytest.skip(f"Myntra catalogue not found at {MYNTRA} (it lives in ../shared/datasets/myntra)")
    return MYNTRA


# `make test-quick` runs `-m "not slow and not myntra"`. Whatever starts a server
# (tritonserver, a Milvus Lite gRPC server, Docker containers) is slow by construction,
# so it is marked here from the fixtures and markers it uses rather than by hand;
# other long tests carry @pytest.mark.slow themselves.
SLOW_MARKERS = ("triton", "docker")
SLOW_FIXTURES = {"triton_server", "triton_url", "deployed_stack", "milvus_lite_server"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or any(
                item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)
