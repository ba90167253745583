"""Speaker benchmark in a namespace LAN: ARP reply latency against the kernel, failover,
graceful handover, memory with 1,000 addresses, API writes against the number of addresses.

    python bench/speaker.py [--trials 20] [--out FILE]      (root; builds its own LAN)
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config

from lbctl import election
from lbctl.lab import assets, controlplane, lan, plan, procs

NS = "lbctl-system"
PROBE = str(Path(__file__).with_name("arp_probe.py"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Bed:
    def __init__(self, work: Path, nodes: int) -> None:
        self.cp = controlplane.ControlPlane(
            workdir=work / "cp",
            binaries=assets.ensure(assets.ALL, progress=lambda m: None),
            bind_address="0.0.0.0",
            extra_sans=plan.candidate_gateways(),
        )
        self.cp.start()
        self.hosts = [f"node{i + 1}" for i in range(nodes)]
        self.lan = lan.create([*self.hosts, "client"], work / "lan")
        self.api = config.new_client_from_config(config_file=str(self.cp.kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.core.create_namespace({"metadata": {"name": NS}})
        self.kubeconfig = self.cp.write_kubeconfig(
            work / "node.kubeconfig", host=str(self.lan.plan.gateway4)
        )
        for h in self.hosts:
            self.core.create_node({"metadata": {"name": self.node(h)}})
        self.speakers: dict[str, procs.Process] = {}
        self.n = 0

    def node(self, host: str) -> str:
        return f"{self.lan.plan.prefix}-{host}"

    def ip4(self, n: int) -> str:
        return str(self.lan.plan.subnet4.network_address + n)

    def set_config(self, text: str) -> None:
        body = {"metadata": {"name": "lbctl-config"}, "data": {"config.yaml": text}}
        try:
            self.core.replace_namespaced_config_map("lbctl-config", NS, body)
        except client.exceptions.ApiException:
            self.core.create_namespaced_config_map(NS, body)

    def start(
        self, host: str, lease: tuple[int, float], extra: tuple[str, ...] = ()
    ) -> procs.Process:
        self.n += 1
        proc = self.lan.start(
            host,
            f"speaker{self.n}",
            [
                sys.executable,
                "-m",
                "lbctl",
                "speaker",
                f"--kubeconfig={self.kubeconfig}",
                f"--namespace={NS}",
                f"--node-name={self.node(host)}",
                "--log-level=warning",
                "--metrics-address=127.0.0.1",
                "--metrics-port=7473",
                f"--lease-duration={lease[0]}",
                f"--renew-period={lease[1]}",
                *extra,
            ],
        )
        self.speakers[host] = proc
        return proc

    def service(self, name: str, ips: list[str]) -> None:
        self.core.create_namespaced_service(
            NS,
            {
                "metadata": {"name": name},
                "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]},
            },
        )
        self.core.patch_namespaced_service_status(
            name, NS, {"status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}}
        )

    def owner(self, ip: str, hosts: list[str]) -> str:
        got = election.owner(ipaddress.ip_address(ip), [self.node(h) for h in hosts])
        assert got
        return got.removeprefix(f"{self.lan.plan.prefix}-")

    def probe(self, *args: str, timeout: float = 120) -> Any:
        out = self.lan.run(
            "client",
            [sys.executable, PROBE, *args, f"--sender-ip={self.lan.host('client').ipv4}"],
            timeout=timeout,
        )
        return json.loads(out.stdout)

    def answered_by(self, ip: str) -> set[str]:
        out = self.lan.run(
            "client",
            [
                sys.executable,
                PROBE,
                "watch",
                f"--target={ip}",
                f"--sender-ip={self.lan.host('client').ipv4}",
                "--interval=0.1",
                "--duration=0.5",
            ],
        ).stdout
        return {json.loads(line)["mac"] for line in out.splitlines() if line.strip()}

    def close(self) -> None:
        self.lan.destroy()
        self.cp.stop()


def wait(what: str, cond: Any, timeout: float = 30) -> None:
    procs.wait_until(what, cond, timeout=timeout, interval=0.05)


def latency(bed: Bed, rate: float, count: int) -> dict[str, Any]:
    ip = bed.ip4(200)
    bed.service("lat", [ip])
    wait("an answer", lambda: bool(bed.answered_by(ip)))
    ours = bed.probe("latency", f"--target={ip}", f"--rate={rate}", f"--count={count}")
    kernel = bed.probe(
        "latency", f"--target={bed.lan.host('node1').ipv4}", f"--rate={rate}", f"--count={count}"
    )
    p = {q: pct(ours["latencies_ms"], q) for q in (0.5, 0.99)}
    k = {q: pct(kernel["latencies_ms"], q) for q in (0.5, 0.99)}
    return {
        "rate_per_s": ours["rate"],
        "requests": count,
        "lost": ours["lost"],
        "p50_ms": p[0.5],
        "p99_ms": p[0.99],
        "kernel_p50_ms": k[0.5],
        "kernel_p99_ms": k[0.99],
        "kernel_lost": kernel["lost"],
        "p99_ratio_to_kernel": p[0.99] / k[0.99],
    }


def failover(
    bed: Bed,
    ip: str,
    trials: int,
    lease: tuple[int, float],
    how: str,
    extra: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Outage as the client sees it: from the kill to the first ARP frame from the heir."""
    outages = []
    for trial in range(trials):
        owner = bed.owner(ip, bed.hosts)
        wait(
            "the owner to answer",
            lambda o=owner: bed.answered_by(ip) == {bed.lan.host(o).mac},
            timeout=30,
        )
        heir = bed.owner(ip, [h for h in bed.hosts if h != owner])
        heir_mac = bed.lan.host(heir).mac
        watcher = bed.lan.start(
            "client",
            f"watch{trial}{how}",
            [
                sys.executable,
                PROBE,
                "watch",
                f"--target={ip}",
                f"--sender-ip={bed.lan.host('client').ipv4}",
                "--interval=0.01",
                f"--duration={lease[0] + 8}",
            ],
        )
        time.sleep(0.5)
        t0 = time.monotonic()
        if how == "kill":
            bed.speakers[owner].signal(signal.SIGKILL)
            bed.lan.run(owner, ["ip", "link", "set", "eth0", "down"])
        elif how == "drain":
            bed.core.patch_node(
                bed.node(owner), {"metadata": {"labels": {election.DRAIN_LABEL: "true"}}}
            )
        else:
            bed.speakers[owner].signal(signal.SIGTERM)
        assert watcher.popen is not None
        watcher.popen.wait(lease[0] + 15)
        times = [
            json.loads(line)["t"]
            for line in watcher.log.read_text().splitlines()
            if line.startswith("{")
            and json.loads(line)["mac"] == heir_mac
            and json.loads(line)["t"] > t0
        ]
        outages.append((min(times) - t0) if times else float("inf"))
        # Heal: the node comes back for the next trial.
        if how == "drain":
            bed.core.patch_node(
                bed.node(owner), {"metadata": {"labels": {election.DRAIN_LABEL: None}}}
            )
        bed.speakers[owner].stop()
        bed.lan.run(owner, ["ip", "link", "set", "eth0", "up"])
        bed.start(owner, lease, extra)
        time.sleep(lease[0] + 0.5)
    return outage_summary(outages, lease, extra)


def outage_summary(
    outages: list[float], lease: tuple[int, float], extra: tuple[str, ...]
) -> dict[str, Any]:
    """Trials, settings and p50/p99/max of outages in seconds; a missed takeover is inf."""
    finite = [o for o in outages if o != float("inf")]
    return {
        "trials": len(outages),
        "lease_duration_s": lease[0],
        "renew_period_s": lease[1],
        "flags": list(extra),
        "p50_s": statistics.median(finite) if finite else None,
        "p99_s": pct(finite, 0.99),
        "max_s": max(outages),
        "missed": len(outages) - len(finite),
    }


def watch_first(bed: Bed, ip: str, mac: str, name: str, limit: float) -> procs.Process:
    """A client process that asks for ``ip`` every 10 ms and logs who answers."""
    return bed.lan.start(
        "client",
        name,
        [
            sys.executable,
            PROBE,
            "watch",
            f"--target={ip}",
            f"--sender-ip={bed.lan.host('client').ipv4}",
            "--interval=0.01",
            f"--duration={limit}",
        ],
    )


def first_answer(watcher: procs.Process, mac: str, after: float) -> float | None:
    for line in watcher.log.read_text().splitlines():
        if line.startswith("{"):
            seen = json.loads(line)
            if seen["mac"] == mac and seen["t"] > after:
                return float(seen["t"])
    return None


LEASE_ONLY = ("--advertise-interval=0",)  # round 1's path: the Lease alone decides
FAULTS = ("sigkill", "link", "freeze")  # the speaker dies; the link dies; the node freezes


def fast_failover(
    bed: Bed, hosts: list[str], ips: list[str], trials: int, lease: tuple[int, float],
    extra: tuple[str, ...], how: str, limit: float = 5.0,
) -> dict[str, Any]:  # fmt: skip
    """Outage per fault with the LAN advertisements on: from the fault to the heir's first
    answer. Victims are taken down one after the other (each trial a node that owns one of
    ``ips`` among the nodes still up), and brought back together every few trials, so the
    restarts' start-up waits are paid once per round, not once per trial."""
    outages: list[float] = []
    one_mac: list[bool] = []
    while len(outages) < trials:
        up = list(hosts)
        victims: list[str] = []
        while len(outages) < trials and len(up) > 3:
            ip = ips[len(outages) % len(ips)]  # a new address each time: new owners
            owner = bed.owner(ip, up)
            wait(
                f"{owner} to answer {ip}",
                lambda o=owner, a=ip: bed.answered_by(a) == {bed.lan.host(o).mac},
                timeout=60,
            )
            survivors = [h for h in up if h != owner]
            heir_mac = bed.lan.host(bed.owner(ip, survivors)).mac
            watcher = watch_first(bed, ip, heir_mac, f"w{len(outages)}{how}", limit)
            time.sleep(0.3)  # the watcher is asking before the fault
            t0 = time.monotonic()
            if how == "sigkill":
                bed.speakers[owner].signal(signal.SIGKILL)
            elif how == "link":
                bed.lan.run(owner, ["ip", "link", "set", "eth0", "down"])
            else:
                bed.speakers[owner].signal(signal.SIGSTOP)
            assert watcher.popen is not None
            watcher.popen.wait(limit + 10)
            at = first_answer(watcher, heir_mac, t0)
            outages.append(at - t0 if at is not None else float("inf"))
            up, victims = survivors, [*victims, owner]
            one_mac.append(bed.answered_by(ip) == {heir_mac})
        # Bring the round's victims back: same node names, fresh speakers.
        for v in victims:
            bed.speakers[v].signal(signal.SIGCONT)
            bed.speakers[v].stop()
            bed.lan.run(v, ["ip", "link", "set", "eth0", "up"])
            bed.start(v, lease, extra)
        wait("every speaker answering its own again",
             lambda: all(bed.answered_by(a) == {bed.lan.host(bed.owner(a, hosts)).mac}
                         for a in ips[:3]), timeout=90)  # fmt: skip
    return {
        **outage_summary(outages, lease, extra),
        "one_mac_after_settling": sum(one_mac),
    }


def apiserver_writes(bed: Bed, seconds: float) -> float:
    """Mutating requests per second seen by the API server over ``seconds``."""

    def count() -> float:
        req = urllib.request.Request(
            bed.cp.server() + "/metrics", headers={"Authorization": f"Bearer {bed.cp.token}"}
        )
        import ssl

        ctx = ssl.create_default_context(cafile=str(bed.cp.ca_file))
        with urllib.request.urlopen(req, context=ctx, timeout=10) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{") and any(
                f'verb="{v}"' in line for v in ("POST", "PUT", "PATCH", "DELETE")
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    a = count()
    time.sleep(seconds)
    return (count() - a) / seconds  # our own reads are GETs: they do not count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/speaker.json"))
    ap.add_argument("--only", choices=["drain", "fast", "api"], help="run one part alone")
    args = ap.parse_args()
    procs.exit_on_sigterm()  # a killed run still stops its control plane and LAN
    results: dict[str, Any] = {}
    work = Path(tempfile.mkdtemp(prefix="lbctl-bench-speaker-"))
    bed = Bed(work, nodes=10)
    try:
        pool = (
            f"pools: [{{name: lan, addresses: ['{bed.ip4(200)}-{bed.ip4(250)}', "
            f"'{bed.lan.plan.subnet6.network_address + 0x1000}/118']}}]\n"
        )
        bed.set_config(pool)
        if args.only in ("fast", "api"):
            part = fast_section(bed, args.trials) if args.only == "fast" else api_section(bed)
            results.update(part)
            old = json.loads(args.out.read_text()) if args.out.exists() else {}
            return _write(args.out, {**old, **results})
        # Round 1's path, measured again beside the LAN advertisements of fast_section: the Lease
        # alone decides (4 s, renewed every second), advertisements off.
        defaults = (4, 1.0)
        bed.hosts, everyone = bed.hosts[:3], bed.hosts  # three speakers for latency, failover
        for h in bed.hosts:
            bed.start(h, defaults, LEASE_ONLY)
        time.sleep(defaults[0])
        if args.only == "drain":
            ip = bed.ip4(201)
            bed.service("failover", [ip])
            results["handover_drain"] = failover(
                bed, ip, args.trials, defaults, "drain", LEASE_ONLY
            )
            print("drain", results["handover_drain"], flush=True)
            # One part alone updates its section of the results and keeps the rest.
            old = json.loads(args.out.read_text()) if args.out.exists() else {}
            return _write(args.out, {**old, **results})
        results["arp_latency"] = latency(bed, args.rate, args.count)
        print("latency", results["arp_latency"], flush=True)

        ip = bed.ip4(201)
        bed.service("failover", [ip])
        results["failover_kill_defaults"] = failover(
            bed, ip, args.trials, defaults, "kill", LEASE_ONLY
        )
        print("kill/defaults", results["failover_kill_defaults"], flush=True)
        results["handover_sigterm"] = failover(bed, ip, args.trials, defaults, "term", LEASE_ONLY)
        print("sigterm", results["handover_sigterm"], flush=True)
        results["handover_drain"] = failover(bed, ip, args.trials, defaults, "drain", LEASE_ONLY)
        print("drain", results["handover_drain"], flush=True)
        tuned = (1, 0.25)
        for h in bed.hosts:
            bed.speakers[h].stop()
            bed.start(h, tuned, LEASE_ONLY)
        time.sleep(2)
        results["failover_kill_tuned"] = failover(bed, ip, args.trials, tuned, "kill", LEASE_ONLY)
        print("kill/tuned", results["failover_kill_tuned"], flush=True)

        # API cost with 10 speakers: 10 addresses, then 1,000.
        for h in bed.hosts:
            bed.speakers[h].stop()
        bed.hosts = everyone
        for h in bed.hosts:
            bed.start(h, defaults, LEASE_ONLY)
        base = bed.lan.plan.subnet6.network_address + 0x1000
        for i in range(10):
            bed.service(f"addr{i}", [str(base + i)])
        time.sleep(defaults[0] + 2)
        writes_small = apiserver_writes(bed, 20)
        for i in range(10, 1000):
            bed.service(f"addr{i}", [str(base + i)])
        time.sleep(defaults[0] + 5)  # let the takeover Events settle
        writes_large = apiserver_writes(bed, 20)
        results["api_writes_per_s"] = {
            "speakers": len(bed.hosts),
            "addresses_10": writes_small,
            "addresses_1000": writes_large,
        }
        print("api", results["api_writes_per_s"], flush=True)

        # Memory: one speaker left, announcing all 1,000.
        for h in bed.hosts[1:]:
            bed.speakers[h].stop()
        time.sleep(defaults[0] + 5)
        metrics = bed.lan.run("node1", ["curl", "-s", "http://127.0.0.1:7473/metrics"]).stdout
        announced = sum(
            1 for line in metrics.splitlines() if line.startswith("lbctl_speaker_announced{")
        )
        pid = bed.speakers["node1"].pid or 0
        rss = next(
            int(line.split()[1]) / 1024
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("VmRSS:")
        )
        results["memory"] = {"announced_addresses": announced, "rss_mib": rss}
        print("memory", results["memory"], flush=True)

        # The LAN advertisements (the defaults since round 2) beside the Lease-only path, on a
        # clean slate: the 1,000 addresses above go first.
        for svc in bed.core.list_namespaced_service(NS).items:
            bed.core.delete_namespaced_service(svc.metadata.name, NS)
        results.update(fast_section(bed, args.trials))
    finally:
        bed.close()
    return _write(args.out, results)


# Each speaker renews its Lease every 10 s at the defaults: a window of 200 s holds 20 or 21
# renewals of each, so where the window falls moves the rate by at most 5 % (60 s: 17 %).
STEADY_WINDOW_S = 200
FLOOR_WINDOW_S = 100  # the control plane alone: ten renewals of the API server's own Lease


def steady_writes(bed: Bed, addresses: int, floor: float) -> dict[str, Any]:
    """API writes per second in steady state (15 s after every Lease is live), per speaker:
    all the API server counts, less ``floor``, what it counted before any speaker ran (its
    own identity Lease, renewed every 10 s, and the rest of the control plane)."""
    time.sleep(15)  # past every start-up write
    writes = apiserver_writes(bed, STEADY_WINDOW_S)
    got = {
        "speakers": len(bed.hosts),
        "addresses": addresses,
        "window_s": STEADY_WINDOW_S,
        "writes_per_s": writes,
        "control_plane_writes_per_s": floor,
        "per_speaker": (writes - floor) / len(bed.hosts),
    }
    print("api/fast", got, flush=True)
    return got


def api_section(bed: Bed) -> dict[str, Any]:
    """Only the steady-state API writes at the defaults, ten speakers, 40 addresses."""
    ips = [bed.ip4(200 + i) for i in range(40)]
    for i, ip in enumerate(ips):
        bed.service(f"fast{i}", [ip])
    floor = apiserver_writes(bed, FLOOR_WINDOW_S)
    for h in bed.hosts:
        bed.start(h, (40, 10.0))
    wait("every speaker's Lease", lambda: len(live_leases(bed)) == len(bed.hosts), 60)
    return {"api_writes_per_s_fast": steady_writes(bed, len(ips), floor)}


def fast_section(bed: Bed, trials: int) -> dict[str, Any]:
    """Failover with the LAN advertisements: defaults and tuned, beside the Lease-only path,
    and the API writes per speaker at the defaults."""
    out: dict[str, Any] = {}
    ips = [bed.ip4(200 + i) for i in range(40)]
    for i, ip in enumerate(ips):
        bed.service(f"fast{i}", [ip])
    configs = {
        "defaults": ((40, 10.0), ()),
        "tuned": ((40, 10.0), ("--advertise-interval=0.03", "--advertise-hold=0.5")),
    }
    for label, (lease, extra) in configs.items():
        for h in bed.hosts:
            if h in bed.speakers:
                bed.speakers[h].stop()
        floor = apiserver_writes(bed, FLOOR_WINDOW_S) if label == "defaults" else 0.0
        for h in bed.hosts:
            bed.start(h, lease, extra)
        wait("every speaker's Lease", lambda: len(live_leases(bed)) == len(bed.hosts), 60)
        if label == "defaults":
            out["api_writes_per_s_fast"] = steady_writes(bed, len(ips), floor)
        for how in FAULTS:
            key = f"fast_{how}_{label}"
            out[key] = fast_failover(bed, bed.hosts, ips, trials, lease, extra, how)
            print(key, out[key], flush=True)
    # Today's path before advertisements: the Lease alone (4 s / 1 s, advertisements off).
    lease_only = (4, 1.0)
    for h in bed.hosts:
        bed.speakers[h].stop()
        bed.start(h, lease_only, LEASE_ONLY)
    wait("every speaker's Lease", lambda: len(live_leases(bed)) == len(bed.hosts), 60)
    out["lease_only_sigkill"] = fast_failover(
        bed, bed.hosts, ips, trials, lease_only, LEASE_ONLY, "sigkill",
        limit=lease_only[0] + 5,
    )  # fmt: skip
    print("lease_only_sigkill", out["lease_only_sigkill"], flush=True)
    return out


def live_leases(bed: Bed) -> set[str]:
    leases = client.CoordinationV1Api(bed.api).list_namespaced_lease(NS).items
    return {lease.spec.holder_identity for lease in leases}


def _write(out: Path, results: dict[str, Any]) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
