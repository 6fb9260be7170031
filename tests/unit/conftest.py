"""Unit tests use no Milvus at all: neither a server nor an embedded Milvus Lite file
(their place is tests/integration). Every MilvusClient made during a unit test fails
that test, naming the URI; building pymilvus request objects is fine."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_milvus_in_unit_tests(monkeypatch):
    from pymilvus import MilvusClient

    opened: list[str] = []
    init = MilvusClient.__init__

    def recording_init(self, uri="http://localhost:19530", *a, **kw):
        opened.append(str(uri))
        init(self, uri, *a, **kw)

    monkeypatch.setattr(MilvusClient, "__init__", recording_init)
    yield
    assert not opened, (f"a unit test opened Milvus at {opened}; fix: move it to tests/integration "
                        "(or test the pure builder without a client)")
