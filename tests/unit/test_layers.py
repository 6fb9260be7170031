"""Who may import what, read from the source with `ast` (nothing imported or run):
the store owns Milvus and depends on nothing above it; vector field names are spelled
in the contract only."""

from __future__ import annotations

import ast
from functools import cache
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


def test_no_module_but_the_store_imports_pymilvus():
    users = [p.relative_to(ROOT).as_posix() for p in _modules(PLUGIN) + _modules(ROOT / "loaders")
             if any(m.split(".")[0] == "pymilvus" for m in _imports(p))]
    assert users and all(u.startswith("plugin/store/") for u in users), users


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


# --- imports inside functions: only heavy ones (plugin/heavy.py) -----------------------------
def _allow_list() -> dict:
    tree = ast.parse((PLUGIN / "heavy.py").read_text(encoding="utf-8"))
    return {n.targets[0].id: ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)}


def _module_name(path: Path) -> str:
    parts = ["samestyle", *(path.relative_to(PLUGIN).parts if path.is_relative_to(PLUGIN)
                            else path.relative_to(ROOT).parts)]
    parts[-1] = parts[-1].removesuffix(".py")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = {_module_name(p): p for p in _modules(PLUGIN) + _modules(ROOT / "loaders")}


@cache
def _import_rows(path: Path) -> tuple[tuple[int, bool, str], ...]:
    """(line, inside a function, what is imported) for every import statement of `path`:
    a project module by its full name (`from . import x` names samestyle....x when x is a
    module), a third-party one by its dotted name."""
    package = _module_name(path).split(".")[: None if path.name == "__init__.py" else -1]
    rows = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                rows.extend((child.lineno, in_function, a.name) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = package[: len(package) - child.level + 1] if child.level else []
                mod = ".".join([*base, *([child.module] if child.module else [])])
                subs = [f"{mod}.{a.name}" for a in child.names if f"{mod}.{a.name}" in SOURCES]
                rows.extend((child.lineno, in_function, m) for m in subs or [mod])
            visit(child, inside)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return tuple(rows)


@cache
def _heavy_modules(packages: frozenset) -> dict[str, str]:
    """Project module -> the chain by which it imports a heavy package at module level
    (itself, its parent packages, or the project modules it imports at module level)."""
    edges = {}
    for name, path in SOURCES.items():
        out = set()
        for _, in_function, mod in _import_rows(path):
            if in_function:
                continue
            parts = mod.split(".")
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)
                    if ".".join(parts[:i]) in SOURCES} if parts[0] == "samestyle" else {mod}
        edges[name] = out
    found = {name: next((m for m in sorted(out) if m.split(".")[0] in packages), "") for name, out in edges.items()}
    changed = True
    while changed:  # through the project modules each imports, to a fixed point
        changed = False
        for name, out in edges.items():
            if not found[name] and (via := next((m for m in sorted(out) if found.get(m)), None)):
                found[name], changed = f"{via} -> {found[via]}", True
    return found


def test_functions_import_only_heavy_dependencies():
    """A function-level import is allowed for a package of heavy.PACKAGES, a project module
    of heavy.MODULES, and, in plugin/cli/, a project module that imports a heavy package at
    module level (so `samestyle VERB --help` stays fast). Everything else is imported at
    module level, where cycles and upward edges show."""
    allow = _allow_list()
    heavy = _heavy_modules(frozenset(allow["PACKAGES"]))
    bad = []
    for path in SOURCES.values():
        rel = path.relative_to(ROOT).as_posix()
        for line, in_function, mod in _import_rows(path):
            if not in_function or mod.split(".")[0] in allow["PACKAGES"] or mod in allow["MODULES"]:
                continue
            if rel.startswith("plugin/cli/") and mod in SOURCES and heavy[mod]:
                continue
            bad.append(f"{rel}:{line}: {mod}")
    assert not bad, ("imported inside a function: move to module level (or, for a heavy optional dependency, "
                     "name it in plugin/heavy.py):\n" + "\n".join(bad))


def test_the_allow_list_names_only_what_is_heavy():
    allow = _allow_list()
    heavy = _heavy_modules(frozenset(allow["PACKAGES"]))
    assert not {p for p in allow["PACKAGES"] if p.split(".")[0] == "samestyle"}, "projects modules go in MODULES"
    light = [m for m in allow["MODULES"] if not heavy.get(m)]
    assert not light, f"{light} import no heavy package at module level: import them at module level"
    assert heavy["samestyle.export"].endswith("torch"), heavy["samestyle.export"]
