"""Controller benchmark: allocation latency and throughput against a floor, restart, memory.

Runs its own etcd + kube-apiserver. The floor is a plain client loop that creates the same
Services and patches their status itself: the API server's own cost. The floor's Services
carry another loadBalancerClass, which lbctl ignores, so floor and lbctl run interleaved with
the controller up: latency samples alternate, and lbctl's bulk run sits between two floor
runs (the floor is their mean). A shared, noisy machine then loads both alike. All figures come
from one run on one machine and are reported as ratios to that floor.

    python bench/controller.py [--services 5000] [--rss-services 10000] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config

from lbctl.lab import assets, controlplane, procs

POOL = "pools: [{name: bench, addresses: [198.18.0.0/15]}]"  # RFC 2544 benchmarking range
NS = "bench"


def watch_status(
    api: client.ApiClient, seen: dict[str, float], cond: threading.Condition, stop: threading.Event
) -> None:
    """Raw watch of the namespace: first time each Service shows an ingress address."""
    core = client.CoreV1Api(api)
    rv = core.list_namespaced_service(NS).metadata.resource_version
    while not stop.is_set():
        try:
            resp = core.list_namespaced_service(
                NS,
                watch=True,
                resource_version=rv,
                timeout_seconds=30,
                allow_watch_bookmarks=True,
                _preload_content=False,
            )
            buf = b""
            for chunk in resp.stream(4096):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    obj = json.loads(line).get("object", {})
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress")
                    name = obj.get("metadata", {}).get("name")
                    if ingress and name not in seen:
                        with cond:
                            seen[name] = time.monotonic()
                            cond.notify_all()
        except Exception:  # the API server is busy or going away: try again
            time.sleep(0.2)


FLOOR_CLASS = "bench.example/floor"  # another implementation's class: lbctl never touches it


def svc_body(name: str, load_balancer_class: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}
    if load_balancer_class:
        spec["loadBalancerClass"] = load_balancer_class
    return {"metadata": {"name": name}, "spec": spec}


def floor_create(core: client.CoreV1Api, name: str, ip: str) -> None:
    """What a controller-less client does: create the Service, write its status itself."""
    core.create_namespaced_service(NS, svc_body(name, FLOOR_CLASS))
    core.patch_namespaced_service_status(
        name, NS, {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
    )


def wait_all(
    seen: dict[str, float], cond: threading.Condition, names: list[str], timeout: float
) -> float:
    deadline = time.monotonic() + timeout
    with cond:
        while not all(n in seen for n in names):
            left = deadline - time.monotonic()
            if left <= 0:
                done = sum(n in seen for n in names)
                raise TimeoutError(f"only {done}/{len(names)} Services got an address")
            cond.wait(left)
    return max(seen[n] for n in names)


def metric(port: int, prefix: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_controller(
    cp: controlplane.ControlPlane, work: Path, name: str
) -> tuple[procs.Process, int]:
    port = procs.free_port()
    proc = procs.Process(
        name,
        [
            sys.executable,
            "-m",
            "lbctl",
            "controller",
            f"--kubeconfig={cp.kubeconfig}",
            f"--namespace={NS}",
            f"--identity={name}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={port}",
            "--log-level=warning",
        ],
        log=work / f"{name}.log",
    ).start()
    procs.wait_until(f"{name} ready", lambda: ready(port), timeout=60, watch=[proc])
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--services", type=int, default=5000)
    ap.add_argument("--rss-services", type=int, default=10000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/controller.json"))
    args = ap.parse_args()
    procs.exit_on_sigterm()  # a killed run still stops its control plane and LAN

    work = Path(tempfile.mkdtemp(prefix="lbctl-bench-"))
    cp = controlplane.ControlPlane(
        workdir=work / "cp",
        binaries=assets.ensure(assets.ALL, progress=lambda m: None),
        # Room for 10,000 LoadBalancer Services' NodePorts.
        apiserver_args=[
            "--service-node-port-range=20000-45000",
            "--max-requests-inflight=1000",
            "--max-mutating-requests-inflight=500",
        ],
    )
    cp.start()
    results: dict[str, Any] = {"machine_cores": len(os.sched_getaffinity(0))}
    controller: procs.Process | None = None
    try:
        api = config.new_client_from_config(config_file=str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NS}})
        seen: dict[str, float] = {}
        cond = threading.Condition()
        stop = threading.Event()
        threading.Thread(target=watch_status, args=(api, seen, cond, stop), daemon=True).start()
        time.sleep(0.5)

        core.create_namespaced_config_map(
            NS, {"metadata": {"name": "lbctl-config"}, "data": {"config.yaml": POOL}}
        )
        controller, port = start_controller(cp, work, "ctl-1")

        # 1. Latency: floor and lbctl samples alternate.
        floor_lat, lat = [], []
        for i in range(args.latency_samples):
            t0 = time.monotonic()
            floor_create(core, f"floor-lat-{i}", f"198.19.255.{i % 250 + 1}")
            floor_lat.append(wait_all(seen, cond, [f"floor-lat-{i}"], 30) - t0)
            t0 = time.monotonic()
            core.create_namespaced_service(NS, svc_body(f"lat-{i}"))
            lat.append(wait_all(seen, cond, [f"lat-{i}"], 30) - t0)
        for i in range(args.latency_samples):
            core.delete_namespaced_service(f"floor-lat-{i}", NS, _preload_content=False)
            core.delete_namespaced_service(f"lat-{i}", NS, _preload_content=False)

        # 2. Bulk: floor, lbctl (created as fast as the client can, all at once), floor again.
        def floor_bulk_run(tag: str) -> float:
            names = [f"floor-bulk{tag}-{i}" for i in range(args.services)]
            t0 = time.monotonic()
            for i, name in enumerate(names):
                floor_create(core, name, f"198.18.{i // 250}.{i % 250 + 1}")
            took = wait_all(seen, cond, names, 900) - t0
            for name in names:
                core.delete_namespaced_service(name, NS, _preload_content=False)
            return took

        floor_bulks = [floor_bulk_run("a")]
        names = [f"bulk-{i}" for i in range(args.services)]
        t0 = time.monotonic()
        for name in names:
            core.create_namespaced_service(NS, svc_body(name))
        bulk = wait_all(seen, cond, names, 900) - t0
        floor_bulks.append(floor_bulk_run("b"))
        floor_bulk = statistics.mean(floor_bulks)
        print(
            f"floor: latency p50 {statistics.median(floor_lat) * 1000:.1f} ms, "
            f"{args.services} Services in {floor_bulks[0]:.1f} s and {floor_bulks[1]:.1f} s",
            flush=True,
        )
        print(
            f"controller: latency p50 {statistics.median(lat) * 1000:.1f} ms, "
            f"{args.services} Services in {bulk:.1f} s",
            flush=True,
        )

        # 5. Restart with every Service addressed: zero writes, time to ready.
        controller.stop()
        t0 = time.monotonic()
        controller, port = start_controller(cp, work, "ctl-2")
        restart_ready = time.monotonic() - t0
        time.sleep(3)
        restart_writes = metric(port, "lbctl_api_writes_total")

        # 6. Memory with many Services.
        extra = [f"rss-{i}" for i in range(max(0, args.rss_services - args.services))]
        for name in extra:
            core.create_namespaced_service(NS, svc_body(name))
        wait_all(seen, cond, extra, 900)
        time.sleep(2)
        rss = rss_mib(controller.pid or 0)
        stop.set()

        results.update(
            {
                "latency_ms": {
                    "p50": statistics.median(lat) * 1000,
                    "p99": pct(lat, 0.99) * 1000,
                    "samples": len(lat),
                },
                "latency_floor_ms": {
                    "p50": statistics.median(floor_lat) * 1000,
                    "p99": pct(floor_lat, 0.99) * 1000,
                },
                "latency_p50_ratio": statistics.median(lat) / statistics.median(floor_lat),
                "bulk_services": args.services,
                "bulk_seconds": bulk,
                "bulk_floor_seconds": floor_bulk,
                "bulk_floor_runs_seconds": floor_bulks,
                "bulk_ratio": bulk / floor_bulk,
                "restart_services": args.services,
                "restart_ready_seconds": restart_ready,
                "restart_writes": restart_writes,
                "rss_services": max(args.rss_services, args.services),
                "rss_mib": rss,
            }
        )
    finally:
        if controller:
            controller.stop()
        cp.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
