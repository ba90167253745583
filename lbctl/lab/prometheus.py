"""A real Prometheus on loopback that scrapes the lab's controller and speakers (I/O).

Debian's ``prometheus`` package provides the server; it listens on 127.0.0.1 only, keeps its
data under its work directory, and is stopped by PID. The scrape configuration is built by a
pure function, so what it scrapes is tested without a server.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import yaml

from lbctl.jsonvalue import JSONObject
from lbctl.lab import procs

CONTROLLER_JOB = "lbctl-controller"
SPEAKER_JOB = "lbctl-speaker"


class Sample(TypedDict):
    """One sample of an instant vector (HTTP API ``/api/v1/query``)."""

    metric: dict[str, str]  # its labels
    value: list[float | str]  # [unix time in seconds, the value as text]


class Alert(TypedDict):
    """One active alert (HTTP API ``/api/v1/alerts``)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # pending or firing
    activeAt: str  # RFC 3339
    value: str


class PrometheusError(RuntimeError):
    """Prometheus is missing, did not start, or refused a query; the message says which."""


def scrape_config(
    targets: Mapping[str, str], rule_files: Sequence[Path], interval: str
) -> JSONObject:
    """``prometheus.yml`` for the lab: the controller (``controller``) in one job, the nodes'
    speakers in another, everything every ``interval``. No target label names the node, as in
    a cluster's PodMonitor: the speakers' own ``lbctl_speaker_info`` does."""
    speakers = sorted(name for name in targets if name != "controller")
    jobs: list[JSONObject] = []
    if "controller" in targets:
        jobs.append({"job_name": CONTROLLER_JOB,
                     "static_configs": [{"targets": [targets["controller"]]}]})  # fmt: skip
    if speakers:
        jobs.append(
            {
                "job_name": SPEAKER_JOB,
                "static_configs": [{"targets": [targets[n] for n in speakers]}],
            }
        )
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": jobs,
    }


@dataclass
class Prometheus:
    workdir: Path
    targets: Mapping[str, str]
    rule_files: Sequence[Path] = ()
    interval: str = "1s"
    port: int = 0
    proc: procs.Process | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise PrometheusError(
                "prometheus not installed (Debian package prometheus; scripts/setup.sh installs it)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "prometheus.yml"
        conf.write_text(yaml.safe_dump(scrape_config(self.targets, self.rule_files, self.interval)))
        self.port = procs.free_port()
        self.proc = procs.Process(
            "prometheus",
            [
                binary,
                f"--config.file={conf}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            log=self.workdir / "prometheus.log",
        ).start()
        try:
            procs.wait_until(
                "prometheus /-/ready", self._ready, timeout=timeout, interval=0.2, watch=[self.proc]
            )
        except BaseException:
            self.stop()
            raise
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=10) as resp:
                body = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('error', body)}")
        return body["data"]

    def query(self, expr: str) -> list[Sample]:
        """An instant query; its vector's samples (``metric`` labels and ``value``)."""
        data = self._api("query", query=expr)
        result: list[Sample] = data["result"] if data["resultType"] == "vector" else []
        return result

    def alerts(self) -> list[Alert]:
        """Active alerts (pending or firing), each with ``labels`` and ``state``."""
        found: list[Alert] = self._api("alerts")["alerts"]
        return found

    def targets_up(self) -> dict[str, bool]:
        """Each scrape target's address, and whether its last scrape worked."""
        active = self._api("targets")["activeTargets"]
        return {t["labels"]["instance"]: t["health"] == "up" for t in active}

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()
