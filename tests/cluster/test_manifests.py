"""Static checks of the shipped cluster configs (cluster/**/*.yaml and the KubeRay Dockerfile).

Each YAML document is classified (Ray cluster launcher config, KubeRay RayCluster, RayJob,
other Kubernetes objects) and checked for the fields its tool requires, for Ray versions
equal to the installed `ray.__version__`, and for the security rules of cluster/README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"
YAML_FILES = sorted([*CLUSTER.rglob("*.yaml"), *CLUSTER.rglob("*.yml")])
DOCKERFILES = sorted(CLUSTER.rglob("Dockerfile*"))
# Every shipped config (README.md may name the forbidden address to warn about it).
CONFIG_FILES = sorted({*YAML_FILES, *DOCKERFILES, *CLUSTER.rglob("*.sh")})
RAY_PIN = re.compile(r"\bray(?:\[[^\]]*\])?==([0-9][\w.]*)")
DPSWEEP_IMAGE = re.compile(r"/dpsweep:([0-9][\w.]*)-ray([0-9][\w.]*)$")
SEARCH_SPACES = CLUSTER.parent / "search_spaces"
CLUSTER_SPACES = ("ct-rate.yaml", "mimic-cxr.yaml")  # the search spaces cluster/README.md runs on clusters


@pytest.fixture(scope="module")
def ray_version() -> str:
    ray = pytest.importorskip("ray", reason="ray is not installed: nothing to compare the pins with")
    return ray.__version__


def _id(value: Any) -> str | None:
    return value.relative_to(CLUSTER).as_posix() if isinstance(value, Path) else None


def load_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def docs_of_kind(kind: str) -> list[tuple[Path, dict]]:
    return [(path, doc) for path in YAML_FILES for doc in load_docs(path) if doc.get("kind") == kind]


def launcher_configs() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in YAML_FILES for doc in load_docs(path)
            if "kind" not in doc and "available_node_types" in doc]


def walk(node: Any, key: str) -> Iterator[Any]:
    """Every value stored under `key` anywhere in a nested YAML document."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def test_expected_configs_are_shipped():
    names = {p.relative_to(CLUSTER).as_posix() for p in YAML_FILES}
    assert {"ray-cluster.yaml", "kuberay/raycluster.yaml", "kuberay/rayjob.yaml"} <= names
    assert launcher_configs() and docs_of_kind("RayCluster") and docs_of_kind("RayJob")


@pytest.mark.parametrize("path", YAML_FILES, ids=_id)
def test_every_yaml_document_is_a_mapping(path):
    docs = load_docs(path)
    assert docs, f"{path}: no YAML document"
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: every document must be a mapping"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=_id)
def test_no_config_binds_every_interface(path):
    assert "0.0.0.0" not in path.read_text(), f"{path}: binds or opens to every address (0.0.0.0)"


# --- Ray cluster launcher -------------------------------------------------------------------

@pytest.mark.parametrize("path,cfg", launcher_configs(), ids=_id)
def test_launcher_config_has_required_fields(path, cfg):
    for key in ("cluster_name", "max_workers", "provider", "available_node_types", "head_node_type",
                "setup_commands", "head_start_ray_commands", "worker_start_ray_commands"):
        assert cfg.get(key) not in (None, "", [], {}), f"{path}: missing or empty '{key}'"
    assert cfg["head_node_type"] in cfg["available_node_types"], (
        f"{path}: head_node_type '{cfg['head_node_type']}' is not one of {sorted(cfg['available_node_types'])}")
    installs = [cmd for cmd in cfg["setup_commands"] if "pip install" in cmd]
    assert not installs, f"{path}: nodes must start from the dpsweep image, not install at start-up: {installs}"
    assert DPSWEEP_IMAGE.search(cfg["docker"]["image"]), (
        f"{path}: docker.image must be the image built from cluster/Dockerfile (dpsweep:<version>-ray<version>)")
    workers = [t for name, t in cfg["available_node_types"].items() if name != cfg["head_node_type"]]
    assert any(t.get("min_workers", 0) == 0 and t.get("max_workers", 0) >= 1 for t in workers), (
        f"{path}: needs an autoscaling worker type (min_workers 0, max_workers >= 1)")


@pytest.mark.parametrize("path,cfg", launcher_configs(), ids=_id)
def test_launcher_config_is_private_and_authenticated(path, cfg):
    head_start = " ".join(cfg["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start, f"{path}: the dashboard must bind 127.0.0.1"
    assert "RAY_AUTH_MODE=token" in yaml.safe_dump(cfg), f"{path}: token auth must be on"
    assert "~/.ray/auth_token" in cfg.get("file_mounts", {}), f"{path}: the token must reach every node"
    assert cfg["provider"].get("use_internal_ips") is True, f"{path}: nodes must use private addresses"
    for name, node_type in cfg["available_node_types"].items():
        node_config = node_type["node_config"]
        # Without SecurityGroupIds the launcher creates a group that opens SSH to the internet.
        assert node_config.get("SecurityGroupIds"), f"{path}: node type '{name}' needs SecurityGroupIds"
        ebs = [m["Ebs"] for m in node_config.get("BlockDeviceMappings", []) if "Ebs" in m]
        assert ebs and all(e.get("Encrypted") is True for e in ebs), f"{path}: '{name}' volumes must be encrypted"


@pytest.mark.parametrize("path,cfg", launcher_configs(), ids=_id)
def test_launcher_config_passes_rays_own_schema(path, cfg):
    pytest.importorskip("jsonschema", reason="Ray validates launcher configs with jsonschema")
    util = pytest.importorskip("ray.autoscaler._private.util", reason="ray is not installed")
    util.validate_config(util.prepare_config(cfg))  # fills defaults locally; no cloud calls


# --- KubeRay ----------------------------------------------------------------------------------

def check_ray_cluster_spec(where: str, spec: dict) -> None:
    """Fields a RayCluster spec (standalone or inside a RayJob) must carry, and its exposure."""
    assert spec.get("rayVersion"), f"{where}: missing spec.rayVersion"
    head = spec.get("headGroupSpec") or {}
    assert head.get("template", {}).get("spec", {}).get("containers"), f"{where}: headGroupSpec needs a container"
    assert head.get("serviceType", "ClusterIP") == "ClusterIP", f"{where}: the head Service must stay ClusterIP"
    # KubeRay binds the dashboard to every interface unless dashboard-host is set.
    host = (head.get("rayStartParams") or {}).get("dashboard-host")
    assert host and host not in ("0.0.0.0", "::"), f"{where}: set headGroupSpec.rayStartParams.dashboard-host"
    assert (spec.get("authOptions") or {}).get("mode") == "token", f"{where}: authOptions.mode must be token"
    groups = spec.get("workerGroupSpecs") or []
    assert groups, f"{where}: needs workerGroupSpecs"
    gpu_limits = [c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
                  for g in groups for c in g["template"]["spec"]["containers"]]
    assert any(gpu_limits), f"{where}: a worker group must request nvidia.com/gpu in its limits"


@pytest.mark.parametrize("path,doc", docs_of_kind("RayCluster"), ids=_id)
def test_raycluster(path, doc):
    assert doc.get("apiVersion") == "ray.io/v1", f"{path}: apiVersion must be ray.io/v1"
    check_ray_cluster_spec(str(path), doc.get("spec") or {})


@pytest.mark.parametrize("path,doc", docs_of_kind("RayJob"), ids=_id)
def test_rayjob(path, doc):
    assert doc.get("apiVersion") == "ray.io/v1", f"{path}: apiVersion must be ray.io/v1"
    spec = doc.get("spec") or {}
    assert str(spec.get("entrypoint", "")).startswith("dpsweep sweep "), f"{path}: entrypoint must run a sweep"
    assert "--store" in spec["entrypoint"] and "://" in spec["entrypoint"], (
        f"{path}: a cluster sweep must write to an object-store URI (--store s3://... or gs://...)")
    assert spec.get("shutdownAfterJobFinishes") is True, f"{path}: shutdownAfterJobFinishes must be true"
    assert isinstance(spec.get("ttlSecondsAfterFinished"), int), f"{path}: set ttlSecondsAfterFinished"
    check_ray_cluster_spec(f"{path} rayClusterSpec", spec.get("rayClusterSpec") or {})


def test_no_kubernetes_service_is_exposed():
    for path in YAML_FILES:
        for doc in load_docs(path):
            assert doc.get("kind") != "Ingress", f"{path}: no Ingress for the Ray ports"
            if doc.get("kind") == "Service":
                assert doc.get("spec", {}).get("type", "ClusterIP") == "ClusterIP", f"{path}: Service must be ClusterIP"


# --- Versions ---------------------------------------------------------------------------------

def test_ray_versions_match_the_installed_ray(ray_version):
    for kind in ("RayCluster", "RayJob"):
        for path, doc in docs_of_kind(kind):
            found = [str(v) for v in walk(doc, "rayVersion")]
            assert found and set(found) == {ray_version}, f"{path}: rayVersion {found} != ray {ray_version}"
    pins = {path: RAY_PIN.findall(path.read_text()) for path in [*YAML_FILES, *DOCKERFILES]}
    assert any(pins.values()), "no ray==X pin found in cluster/"
    for path, versions in pins.items():
        assert set(versions) <= {ray_version}, f"{path}: pins ray=={versions}, installed ray is {ray_version}"


def image_tag_matches(image: str, version: str) -> bool:
    """rayproject/ray[-ml]:<version>[-suffix]; any other image carries `ray<version>` in its tag."""
    repo, _, tag = image.rpartition(":")
    if repo.startswith("rayproject/"):
        return tag == version or tag.startswith(version + "-")
    return f"ray{version}" in tag


def test_images_match_the_installed_ray(ray_version):
    images = [(path, str(image)) for path in YAML_FILES for doc in load_docs(path)
              for key in ("image", "head_image", "worker_image") for image in walk(doc, key)]
    images += [(path, line.split()[1]) for path in DOCKERFILES
               for line in path.read_text().splitlines() if line.startswith("FROM ")]
    assert images, "no container image found in cluster/"
    for path, image in images:
        assert image_tag_matches(image, ray_version), f"{path}: image {image} does not carry Ray {ray_version}"


# --- One image, data where the search spaces look ---------------------------------------------

def _pyproject() -> dict:
    import tomllib

    return tomllib.loads((CLUSTER.parent / "pyproject.toml").read_text())


def test_the_image_pins_what_pyproject_pins_and_installs_the_project():
    dockerfile = (CLUSTER / "Dockerfile").read_text()
    project = _pyproject()["project"]
    ray_pin = next(d for d in project["dependencies"] if d.startswith("ray["))
    assert f'"{ray_pin}"' in dockerfile, f"cluster/Dockerfile must install {ray_pin} as pyproject.toml pins it"
    torch = re.search(r'"torch==([0-9.]+)"', dockerfile)
    assert torch, "cluster/Dockerfile must pin torch (==), or pip may pick another CUDA build"
    low, high = re.search(r"torch>=([0-9.]+),<([0-9.]+)", " ".join(project["dependencies"])).groups()
    version = tuple(int(x) for x in torch.group(1).split("."))
    assert tuple(int(x) for x in low.split(".")) <= version < tuple(int(x) for x in high.split("."))
    assert 'pip install --no-cache-dir -e ".[model]"' in dockerfile
    assert f"m.version('dpsweep') == '{project['version']}'" in dockerfile
    assert (CLUSTER / "Dockerfile.dockerignore").is_file()  # BuildKit reads <Dockerfile>.dockerignore


def test_every_image_is_the_dpsweep_image_of_this_version():
    version = _pyproject()["project"]["version"]
    images = [(path, str(image)) for path in YAML_FILES for doc in load_docs(path)
              for key in ("image", "head_image", "worker_image") for image in walk(doc, key)]
    assert images
    for path, image in images:
        match = DPSWEEP_IMAGE.search(image)
        assert match and match.group(1) == version, f"{path}: image {image} is not dpsweep:{version}-ray<version>"


def _dataset_paths() -> dict[str, str]:
    return {name: yaml.safe_load((SEARCH_SPACES / name).read_text())["dataset"]["path"] for name in CLUSTER_SPACES}


def _kuberay_data_mounts() -> list[tuple[Path, str]]:
    mounts = []
    for kind in ("RayCluster", "RayJob"):
        for path, doc in docs_of_kind(kind):
            mounts += [(path, m["mountPath"]) for group in walk(doc, "volumeMounts") for m in group
                       if m.get("name") == "data"]
    return mounts


def test_kuberay_mounts_the_data_where_the_search_spaces_read_it():
    mounts = _kuberay_data_mounts()
    assert mounts, "the KubeRay manifests mount no data volume"
    for name, data_path in _dataset_paths().items():
        for path, mount in mounts:
            assert data_path.startswith(mount.rstrip("/") + "/"), (
                f"{path}: data mounted at {mount}, but search_spaces/{name} reads {data_path}")


def test_the_launcher_mounts_the_data_where_the_search_spaces_read_it():
    for path, cfg in launcher_configs():
        volumes = [opt.split("=", 1)[1].split(":") for opt in cfg["docker"]["run_options"]
                   if opt.startswith("--volume=")]
        targets = [parts[1] for parts in volumes if len(parts) >= 2]
        for name, data_path in _dataset_paths().items():
            assert any(data_path.startswith(t.rstrip("/") + "/") for t in targets), (
                f"{path}: no --volume puts search_spaces/{name}'s {data_path} into the container")


def test_rayjob_entrypoint_names_a_shipped_search_space():
    for path, doc in docs_of_kind("RayJob"):
        space = re.search(r"dpsweep sweep (\S+\.yaml)", doc["spec"]["entrypoint"]).group(1)
        assert (CLUSTER.parent / space).is_file() and Path(space).name in CLUSTER_SPACES, f"{path}: {space}"
