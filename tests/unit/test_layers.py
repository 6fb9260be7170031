"""Who may import what, read from the source with `ast` (nothing imported or run):
the store owns Milvus and depends on nothing above it; vector field names are spelled
in the contract only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugin"
VECTOR_NAMES = {"image_vec", "text_vec", "fused_vec"}


def _modules(folder: Path):
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path) -> list[str]:
    """Absolute names of what `path` imports (relative imports resolved against plugin/ as
    `samestyle`), at module level and inside functions alike."""
    if path.is_relative_to(PLUGIN):
        package = ["samestyle", *path.relative_to(PLUGIN).parts[:-1]]
    else:  # loaders/ is samestyle.loaders
        package = ["samestyle", *path.relative_to(ROOT).parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join([*base, *([node.module] if node.module else [])])
            out += [mod] + [f"{mod}.{a.name}" for a in node.names]
    return out


@pytest.mark.parametrize("path", _modules(PLUGIN / "store"), ids=lambda p: p.name)
def test_the_store_imports_nothing_above_it(path):
    above = ("samestyle.query", "samestyle.cli", "samestyle.http", "samestyle.web", "samestyle.bench",
             "samestyle.dedup", "samestyle.products", "samestyle.loaders")
    bad = [m for m in _imports(path) if m.startswith(above)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", _modules(PLUGIN / "query"), ids=lambda p: p.name)
def test_the_query_layer_builds_plain_data(path):
    """Plans are plain data; the store turns them into pymilvus objects (store/requests.py)."""
    bad = [m for m in _imports(path) if m.split(".")[0] == "pymilvus"]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", _modules(PLUGIN / "bench"), ids=lambda p: p.name)
def test_benchmarks_import_nothing_from_the_cli(path):
    """Benchmarks are library jobs: their helpers come from the library (samestyle.output,
    samestyle.dedup, ...), never from the CLI layer."""
    bad = [m for m in _imports(path) if m.startswith("samestyle.cli")]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", _modules(PLUGIN / "model"), ids=lambda p: p.name)
def test_the_model_package_reaches_into_no_ops_code(path):
    """The model (backbones, fusion, features, checkpoints, its ONNX graphs) is what the
    encoders, export and training build on; it imports none of them, nor the loaders."""
    above = ("samestyle.encoders", "samestyle.export", "samestyle.triton_repo", "samestyle.loaders",
             "samestyle.store", "samestyle.query", "samestyle.cli", "samestyle.train", "samestyle.bench")
    bad = [m for m in _imports(path) if m.startswith(above)]
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_only_the_store_touches_a_milvus_client():
    users = [p.relative_to(ROOT).as_posix() for p in _modules(PLUGIN) + _modules(ROOT / "loaders")
             if any(m in ("pymilvus.MilvusClient", "pymilvus.milvus_client") for m in _imports(p))]
    assert "plugin/store/client.py" in users  # where the client is made
    assert all(u.startswith("plugin/store/") for u in users), users


def _string_constants(tree: ast.AST):
    """String constants that are not docstrings."""
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
            yield node


def test_vector_field_names_are_spelled_in_the_contract_only():
    found = []
    for p in _modules(PLUGIN) + _modules(ROOT / "loaders"):
        if p == PLUGIN / "contract.py":
            continue
        for node in _string_constants(ast.parse(p.read_text(encoding="utf-8"))):
            if node.value in VECTOR_NAMES:
                found.append(f"{p.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, "use samestyle.contract (IMAGE_VEC, TEXT_VEC, FUSED_VEC, VECTOR_FIELDS):\n" + "\n".join(found)
