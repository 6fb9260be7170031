"""The distribution: one import name, `samestyle`, over plugin/ and loaders/, with its
data files; the wheel, installed into a fresh venv outside the checkout, runs.

The wheel test builds with the running environment's setuptools (no build isolation,
no network) and installs with --no-deps --no-index into a venv that sees this
environment's site-packages through a .pth line, so it needs no download and takes
seconds; what it checks is the wheel's own content."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    # a folder Python can import but [tool.setuptools] packages does not list (data under
    # a package: list it too), or a deprecated setting: setuptools warns, and we do not
    for warning in ("absent from the `packages` configuration", "BuildBackendWarning: `project.license`"):
        assert warning not in r.stdout + r.stderr, warning
    (whl,) = out.glob("samestyle-*.whl")
    return whl


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


def test_wheel_installs_and_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the dependencies: this environment's site-packages, after the venv's own
    Path(site, "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(tmp_path)  # the cache dir an installed package defaults to
    work = tmp_path / "elsewhere"
    work.mkdir()

    r = subprocess.run([str(venv / "bin" / "samestyle"), "--help"], cwd=work, env=env,
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
    r = subprocess.run([str(py), "-c", probe], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    import json

    got = json.loads(r.stdout)
    pkg = Path(site) / "samestyle"
    assert Path(got["file"]).parent == pkg and Path(got["loaders"]).parent == pkg / "loaders"
    assert Path(got["milvus"]) == pkg / "_data" / "milvus"
    assert Path(got["skeleton"]) == pkg / "_data" / "triton_models"
    assert got["fields"] > 0 and "lite" in got["profiles"]
    assert Path(got["triton_repo"]).is_relative_to(tmp_path), "an installed package builds its repository in the cache"
    assert not got["plugin"] and not got["loaders_top"], "no top-level plugin/loaders may be installed"
