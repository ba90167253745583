"""The chart in deploy/helm/lbctl, run through the real helm, and the kustomize base beside it."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "lbctl"
# What Helm adds to every object's metadata.labels, and kustomize has no notion of.
HELM_LABELS = (
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
)
Key = tuple[str, str, str]  # kind, namespace, name


def run(
    helm: Path, *args: str, kubeconfig: Path | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    argv = [str(helm), *args]
    if kubeconfig is not None:
        argv.append(f"--kubeconfig={kubeconfig}")
    got = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL
    )
    if check and got.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed ({got.returncode}):\n{got.stderr}")
    return got


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def render(helm: Path, *args: str, namespace: str = "lbctl-system") -> list[dict[str, Any]]:
    """``helm template lbctl deploy/helm/lbctl -n NAMESPACE ARGS`` as objects."""
    return documents(run(helm, "template", "lbctl", str(CHART), "-n", namespace, *args).stdout)


def kustomize(kubectl: Path) -> list[dict[str, Any]]:
    got = subprocess.run(
        [str(kubectl), "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True
    )
    return documents(got.stdout)


# Kustomize 5.7 does not know these kinds are cluster-scoped and gives them the base's
# namespace; the API server ignores a namespace on a cluster-scoped object.
CLUSTER_SCOPED = {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}


def key(obj: dict[str, Any]) -> Key:
    meta = obj["metadata"]
    namespace = "" if obj["kind"] in CLUSTER_SCOPED else meta.get("namespace", "")
    return (obj["kind"], namespace, meta["name"])


def comparable(objs: Sequence[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Objects by key, with Helm's bookkeeping labels dropped and the pool config parsed (the
    same config may be written with other indentation)."""
    out = {}
    for obj in objs:
        obj = yaml.safe_load(yaml.safe_dump(obj))  # a deep copy
        if obj["kind"] in CLUSTER_SCOPED:
            obj["metadata"].pop("namespace", None)
        labels = obj["metadata"].get("labels") or {}
        for name in HELM_LABELS:
            labels.pop(name, None)
        if not labels:
            obj["metadata"].pop("labels", None)
        if obj["kind"] == "ConfigMap" and "config.yaml" in obj.get("data", {}):
            obj["data"]["config.yaml"] = yaml.safe_load(obj["data"]["config.yaml"])
        out[key(obj)] = obj
    return out


def find(objs: Sequence[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)
