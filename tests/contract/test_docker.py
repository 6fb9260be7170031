"""The deployment files, checked by parsing them (no Docker engine needed): pinned
images, ports on 127.0.0.1 only, a health check on every service, named volumes, the
model repository copied into (or mounted in) the Triton image, and the settings the
services hand each other agreeing with the code that reads them."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest
import yaml

from samestyle import config
from samestyle import contract as C

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILES = sorted(DOCKER.glob("*.Dockerfile"))
GPU_SERVICE = "triton"
STATEFUL = {"etcd": "/etcd", "minio": "/minio_data", "milvus": "/var/lib/milvus", "samestyle": "/data"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        buf += line.rstrip("\\").rstrip() + " " if line.rstrip().endswith("\\") else line
        if not line.rstrip().endswith("\\"):
            word, _, rest = buf.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


def _args(path: Path) -> dict[str, str]:
    return dict(a.split("=", 1) for k, a in _instructions(path) if k == "ARG" and "=" in a)


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), text)


def pinned(image: str) -> str | None:
    """Why an image reference is not pinned, or None when it is."""
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:  # no tag (a registry port is not a tag)
        return f"[{image}] has no tag"
    if tag in ("latest", "stable", "nightly") or re.fullmatch(r"v?\d+", tag) or tag.endswith("-latest"):
        return f"[{image}] has the moving tag [{tag}]"
    return None


@pytest.mark.parametrize("image, ok", [
    ("milvusdb/milvus:v3.0.2", True), ("nvcr.io/nvidia/tritonserver:24.12-py3", True),
    ("python:3.11.11-slim-bookworm", True), ("x@sha256:" + "0" * 64, True),
    ("milvusdb/milvus", False), ("milvusdb/milvus:latest", False), ("localhost:5000/samestyle", False),
    ("quay.io/coreos/etcd:v3", False), ("milvusdb/milvus:v2.5-latest", False),
])
def test_pinned_rule(image, ok):
    assert (pinned(image) is None) is ok


def test_every_compose_image_is_pinned(services):
    for name, svc in services.items():
        assert "image" in svc, f"service [{name}] has no image: name a pinned tag, also for built ones"
        assert pinned(svc["image"]) is None, f"service [{name}]: {pinned(svc['image'])}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_base_image_is_pinned(dockerfile):
    args = _args(dockerfile)
    froms = [_expand(a.split()[0], args) for k, a in _instructions(dockerfile) if k == "FROM"]
    assert froms, f"{dockerfile.name} has no FROM"
    for image in froms:
        assert pinned(image) is None, f"{dockerfile.name}: {pinned(image)}"


def test_every_published_port_is_on_localhost(services):
    for name, svc in services.items():
        for port in svc.get("ports", []):
            if isinstance(port, dict):  # long syntax
                assert port.get("host_ip") == "127.0.0.1", f"service [{name}] publishes {port} beyond 127.0.0.1"
            else:
                parts = str(port).split(":")
                assert len(parts) == 3 and parts[0] == "127.0.0.1", \
                    f"service [{name}] publishes [{port}]: write it as 127.0.0.1:HOST:CONTAINER"
        assert "network_mode" not in svc or svc["network_mode"] != "host", f"[{name}] uses the host network"


def test_every_service_has_a_health_check(services):
    for name, svc in services.items():
        hc = svc.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"service [{name}] has no health check"
        assert hc.get("interval") and hc.get("retries"), f"service [{name}]: health check needs interval and retries"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_image_has_a_health_check(dockerfile):
    assert any(k == "HEALTHCHECK" for k, _ in _instructions(dockerfile)), f"{dockerfile.name} has no HEALTHCHECK"


def test_dependents_wait_for_healthy_services(services):
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        assert isinstance(deps, dict), f"service [{name}]: depends_on needs condition: service_healthy"
        for dep, cond in deps.items():
            assert dep in services, f"service [{name}] depends on unknown [{dep}]"
            assert cond.get("condition") == "service_healthy", f"[{name}] starts before [{dep}] is healthy"


def test_state_lives_in_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, target in STATEFUL.items():
        mounts = [str(v) for v in services[name].get("volumes", [])]
        hit = [m for m in mounts if m.split(":")[1] == target]
        assert hit, f"service [{name}] keeps its state in [{target}], which is not a volume"
        source = hit[0].split(":")[0]
        assert source in declared, f"service [{name}]: [{source}] is not a named volume of the compose file"


def test_triton_gets_the_gpu(services):
    devices = services[GPU_SERVICE]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert services[GPU_SERVICE].get("shm_size"), "the python backend needs shared memory (shm_size)"


class _ComposeLoader(yaml.SafeLoader):
    """Compose's own YAML tags (`!reset`, `!override`) kept as markers."""


def _tagged(loader, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return (node.tag, value)


for _tag in ("!reset", "!override"):
    _ComposeLoader.add_constructor(_tag, _tagged)


def test_cpu_override_only_drops_the_gpu_reservation(services):
    cpu = yaml.load((DOCKER / "compose.cpu.yaml").read_text(), Loader=_ComposeLoader)
    assert cpu == {"services": {GPU_SERVICE: {"deploy": ("!reset", {})}}}
    assert "deploy" in services[GPU_SERVICE]


def test_model_repository_is_copied_or_mounted(services):
    triton = services[GPU_SERVICE]
    cmd = triton["command"] if isinstance(triton["command"], list) else shlex.split(triton["command"])
    repo = [c.split("=", 1)[1] for c in cmd if c.startswith("--model-repository=")]
    assert repo, "tritonserver is started without --model-repository"
    mounted = any(str(v).split(":")[1] == repo[0] for v in triton.get("volumes", []))
    dockerfile = DOCKER / Path(triton["build"]["dockerfile"]).name
    args = {**_args(dockerfile), **(triton["build"].get("args") or {})}
    copies = [_expand(a, args).split() for k, a in _instructions(dockerfile) if k == "COPY"]
    copied = [c for c in copies if c[-1].rstrip("/") == repo[0]]
    assert mounted or copied, f"nothing puts the model repository at [{repo[0]}]"
    if copied:
        src = copied[0][-2]
        assert not dockerignored(src), f".dockerignore drops [{src}], which the Triton image copies"


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (last match wins,
    a pattern also matches everything under a matched folder)."""
    out = False
    parts = path.split("/")
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg, pat = line.startswith("!"), line.lstrip("!")
        if any(fnmatch.fnmatchcase("/".join(parts[:i]), pat) for i in range(1, len(parts) + 1)):
            out = not neg
    return out


@pytest.mark.parametrize("path, ignored", [
    ("build/model_repository", False), ("build/model_repository.test-12", False), ("build/onnx", True),
    (".venv/bin/python", True), ("plugin/contract.py", False), ("triton_models/x/1/model.onnx", True),
    ("triton_models/x/config.pbtxt", False),
])
def test_dockerignore_rules(path, ignored):
    assert dockerignored(path) is ignored


def test_triton_python_deps_are_the_serving_pins(services):
    """The python-backend model runs in the image's python with the pins of the local
    serving environment (minus the tritonserver wheel), so preprocessing agrees."""
    dockerfile = DOCKER / "triton.Dockerfile"
    text = " ".join(a for k, a in _instructions(dockerfile) if k in ("COPY", "RUN"))
    assert "requirements/serve.txt" in text and "grep -v '^nvidia-pytriton'" in text
    pins = [ln for ln in (ROOT / "requirements" / "serve.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", p.strip()) for p in pins), pins
    base = [a for k, a in _instructions(dockerfile) if k == "FROM"][0]
    assert base.startswith("nvcr.io/nvidia/tritonserver:") and base.endswith("-py3")


def test_samestyle_service_points_at_the_other_services(services):
    env = services["samestyle"]["environment"]
    assert set(k for k in env if k.startswith("SAMESTYLE_")) <= set(config.ENV_VARS), "unknown SAMESTYLE_ variable"
    s = config.from_env({k: str(v) for k, v in env.items()})
    milvus = re.fullmatch(r"https?://([\w-]+):(\d+)", s.milvus_uri or "")
    assert milvus and milvus.group(1) in services and milvus.group(2) == "19530"
    host, _, port = (s.triton_url or "").partition(":")
    assert host in services and port == "8001", "SAMESTYLE_TRITON_URL must be the gRPC port of a service"
    assert s.resolved_profile in ("hnsw", "diskann", "gpu_cagra")


def test_samestyle_image_runs_a_real_verb():
    from samestyle.cli.main import _commands

    instr = dict(_instructions(DOCKER / "samestyle.Dockerfile"))
    entry = yaml.safe_load(instr["ENTRYPOINT"])
    cmd = yaml.safe_load(instr["CMD"])
    assert entry == ["samestyle"]
    verb = _commands().get(cmd[0])
    assert verb is not None, f"the image runs `samestyle {cmd[0]}`, which is not a verb"
    opts = {o for p in verb.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    assert {c for c in cmd[1:] if c.startswith("--")} <= opts, f"`samestyle {cmd[0]}` lacks some of {cmd[1:]}"


def test_onnxruntime_repository_passes_the_image_build_checks(onnx_bundle, tmp_path):
    """What `samestyle export --backend onnxruntime` writes is what triton.Dockerfile
    accepts: the entry model on the python backend, the encoders on the native
    onnxruntime backend on the GPU, batching within the contract's limits."""
    from samestyle.triton_repo import build_repository, default_tuning, missing_files

    repo = build_repository(onnx_bundle, tmp_path / "model_repository", default_tuning("onnxruntime"))
    assert missing_files(repo) == []
    assert (repo / C.ENTRY_MODEL / "config.pbtxt").is_file()
    for name in (C.IMAGE_MODEL, C.TEXT_MODEL, C.FUSION_MODEL):
        cfg = (repo / name / "config.pbtxt").read_text()
        assert 'platform: "onnxruntime_onnx"' in cfg, name
        assert "kind: KIND_GPU" in cfg, name
        assert not (repo / name / "1" / "model.py").exists(), name
        batch = int(re.search(r"max_batch_size: (\d+)", cfg).group(1))
        assert 1 <= batch <= max(C.MAX_BATCH, C.FUSION_MAX_BATCH), name
    entry = (repo / C.ENTRY_MODEL / "config.pbtxt").read_text()
    assert 'backend: "python"' in entry and f"max_batch_size: {C.MAX_BATCH}" in entry


def test_samestyle_health_checks_probe_a_real_route(services):
    """The image and the compose service probe a path the HTTP API serves, on the
    port `samestyle serve` is told to listen on."""
    from samestyle.http import create_app

    routes = {getattr(r, "path", None) for r in create_app(config.Settings()).routes}
    cmd = yaml.safe_load(dict(_instructions(DOCKER / "samestyle.Dockerfile"))["CMD"])
    port = cmd[cmd.index("--http-port") + 1]
    probes = [" ".join(services["samestyle"]["healthcheck"]["test"]),
              dict(_instructions(DOCKER / "samestyle.Dockerfile"))["HEALTHCHECK"]]
    for probe in probes:
        url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w*)", probe)
        assert url, probe
        assert url.group(1) == port and url.group(2) in routes, f"{probe} probes nothing the API serves"
    assert any(p.endswith(f":{port}") for p in services["samestyle"]["ports"])
