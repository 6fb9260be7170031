"""The distribution: one import name, `samestyle`, over plugin/ and loaders/, with its
data files; the wheel, installed into a fresh venv outside the checkout, runs.

The wheel (tests/fixtures/wheel.py: built without network, installed with --no-deps
--no-index into a venv that sees this environment's site-packages) is checked here for
its content, `samestyle --help` and its data paths, in seconds; the Python API and the
demo run from it in tests/integration/test_wheel.py."""

from __future__ import annotations

import subprocess
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.wheel import install_wheel

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def _python_packages(folder: str, name: str) -> set[str]:
    base = ROOT / folder
    return {".".join([name, *p.parent.relative_to(base).parts]) for p in base.rglob("__init__.py")
            if "__pycache__" not in p.parts}


def test_every_package_folder_is_listed():
    listed = set(SETUPTOOLS["packages"])
    code = _python_packages("plugin", "samestyle") | _python_packages("loaders", "samestyle.loaders")
    assert code <= listed, f"add to [tool.setuptools] packages: {sorted(code - listed)}"
    models = {f"samestyle._data.triton_models.{p.parent.name}" for p in (ROOT / "triton_models").glob("*/config.pbtxt")}
    assert models <= listed, f"add to [tool.setuptools] packages and package-dir: {sorted(models - listed)}"
    assert not [p for p in listed if p.split(".")[0] != "samestyle"]
    dirs = SETUPTOOLS["package-dir"]
    assert dirs["samestyle"] == "plugin" and dirs["samestyle.loaders"] == "loaders"


def _pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            out[name.split("[")[0].strip().lower()] = version.strip()
    return out


def test_console_script_and_dependencies():
    """Every package requirements/app.txt pins is declared in pyproject.toml (a runtime
    dependency, or the [test] extra for test tools), at the same version."""
    assert PYPROJECT["project"]["scripts"]["samestyle"] == "samestyle.cli.main:main"
    pinned = _pins((ROOT / "requirements" / "app.txt").read_text().splitlines())
    declared = _pins(PYPROJECT["project"]["dependencies"]) | _pins(PYPROJECT["project"]["optional-dependencies"]["test"])
    missing = sorted(set(pinned) - set(declared))
    assert not missing, (f"requirements/app.txt pins {missing}: declare them in pyproject.toml "
                         "[project] dependencies (runtime) or [project.optional-dependencies] test")
    differ = {n: (pinned[n], declared[n]) for n in pinned if pinned[n] != declared[n]}
    assert not differ, f"app.txt vs pyproject.toml versions: {differ}"


def test_checkout_reads_data_in_place():
    from samestyle.config import resource
    from samestyle.store.spec import SPEC_DIR
    from samestyle.triton_repo import SKELETON

    assert SPEC_DIR == ROOT / "milvus" and SKELETON == ROOT / "triton_models"
    assert resource("requirements") == ROOT / "requirements"


@pytest.mark.slow  # builds the wheel (pip, in a subprocess)
def test_wheel_content(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"samestyle", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}, tops
    for need in ["samestyle/_data/milvus/collection.json", "samestyle/_data/milvus/indexes.json",
                 "samestyle/_data/triton_models/product_encoder/config.pbtxt",
                 "samestyle/_data/triton_models/product_encoder/1/model.py",
                 "samestyle/_data/requirements/serve.txt",
                 "samestyle/model/default/manifest.json", "samestyle/query/profiles.json",
                 "samestyle/loaders/pipeline.py", "samestyle/cli/main.py", "samestyle/web/static/index.html"]:
        assert need in names, need
    assert not [n for n in names if n.endswith(".onnx") or "__pycache__" in n]


@pytest.mark.slow  # a fresh venv with the wheel, and commands run from it
def test_wheel_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    """--help and the data paths; the Python API and the demo from the installed wheel
    are tests/integration/test_wheel.py."""
    inst = install_wheel(wheel, tmp_path)
    site, env = inst.site, inst.env()
    work = tmp_path / "elsewhere"
    work.mkdir()

    r = subprocess.run([str(inst.samestyle), "--help"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "search" in r.stdout, r.stderr
    probe = """
import importlib.util, json, samestyle, samestyle.loaders
from samestyle.config import resource, Settings
from samestyle.store.spec import load_collection_spec, load_index_profiles
from samestyle.triton_repo import SKELETON
print(json.dumps({
    "file": samestyle.__file__, "loaders": samestyle.loaders.__file__,
    "milvus": str(resource("milvus")), "skeleton": str(SKELETON),
    "fields": len(load_collection_spec().names), "profiles": sorted(load_index_profiles()),
    "triton_repo": str(Settings().triton_repo),
    "plugin": importlib.util.find_spec("plugin") is not None,
    "loaders_top": importlib.util.find_spec("loaders") is not None,
}))
"""
    r = subprocess.run([str(inst.python), "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    got = json.loads(r.stdout)
    pkg = Path(site) / "samestyle"
    assert Path(got["file"]).parent == pkg and Path(got["loaders"]).parent == pkg / "loaders"
    assert Path(got["milvus"]) == pkg / "_data" / "milvus"
    assert Path(got["skeleton"]) == pkg / "_data" / "triton_models"
    assert got["fields"] > 0 and "lite" in got["profiles"]
    assert Path(got["triton_repo"]).is_relative_to(inst.home), "an installed package builds its repository in the cache"
    assert not got["plugin"] and not got["loaders_top"], "no top-level plugin/loaders may be installed"
