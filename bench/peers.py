"""lbctl and MetalLB side by side in one real-node lab: the same Services, kills and client.

    python bench/peers.py [--out bench/results/peers.json]       (root; about 15-20 minutes)

One ``lbctl lab up`` (real kubelets, lbctl's release from its Dockerfile and ``deploy/``), then
for lbctl and afterwards for MetalLB (built from the Go module proxy, installed from its own
``metallb-native.yaml`` with webhooks off, an IPAddressPool of the same range and an
L2Advertisement), the same steps from the same client:

1. Service -> address: one ``type: LoadBalancer`` Service at a time, from the create request
   to ``status.loadBalancer.ingress`` (a watch); then ``--bulk`` Services created at once;
2. ARP reply latency for the demo Service's address, from the client (``arp_probe.py``);
3. memory (VmRSS of each controller and speaker process, from /proc) and API writes per
   second in steady state, and writes per Service allocated, by the ServiceAccounts of each
   (the API server's audit log: ``apiserver_request_total`` has no user label);
4. failover when the announcing node dies, as the lab's failover code does: its speaker's
   process SIGKILLed and its LAN link down; the time until another node answers ARP;
5. graceful handover: the announcing speaker's Pod deleted; the time until another answers.

Both run with their defaults. Between the two, the LoadBalancer Services are deleted while
lbctl still runs (its finalizer), lbctl is uninstalled, MetalLB installed, and the demo Service
created again. ``LBCTL_PEERS_SCALE=N`` multiplies every trial count (default 1: 20 latency,
2 bulk trials of 30 Services, 500 ARP probes, 3 kills, 3 handovers per peer).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch

from lbctl.lab import arpwatch, assets, cluster, controlplane, failover, lan, metallb, nodes, procs
from lbctl.lab import lab as lab_mod

PROBE = str(Path(__file__).with_name("arp_probe.py"))
NS = cluster.DEMO_NS
BENCH_LABEL = {"bench": "peers"}
Say = Callable[[str], None]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """n, p50, p99, max and the values (seconds or milliseconds, as given)."""
    p50, p99 = pct(values, 0.5), pct(values, 0.99)
    return {
        "n": len(values),
        "p50": None if p50 is None else round(p50, digits),
        "p99": None if p99 is None else round(p99, digits),
        "max": round(max(values), digits) if values else None,
        "values": [round(v, digits) for v in values],
    }


@dataclass(frozen=True)
class Peer:
    """What differs between the two: names, ServiceAccounts, how to find their processes."""

    name: str
    namespace: str
    speaker_pods: str  # label selector
    controller_sa: str
    speaker_sa: str
    controller_arg: str  # the word that marks each process in its command line
    speaker_arg: str

    def user(self, sa: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{sa}"


LBCTL = Peer("lbctl", cluster.LBCTL_NS, "app.kubernetes.io/component=speaker",
             "lbctl-controller", "lbctl-speaker", "controller", "speaker")  # fmt: skip
METALLB = Peer("metallb", metallb.NAMESPACE, "component=speaker",
               "controller", "speaker", "/controller", "/speaker")  # fmt: skip


class Bench:
    def __init__(self, lab: lab_mod.Lab, scale: int, bulk: int) -> None:
        self.lab = lab
        state = lab.state()
        assert state is not None
        self.state = state
        self.api = config.new_client_from_config(config_file=state.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.scale = scale
        self.bulk = bulk
        self.lan = lab.lan()
        self.macs = {self.lan.host(n).mac: n for n in lab_mod.NODES}
        self.addressed: dict[str, float] = {}  # Service uid -> when it first had an address
        self.uids: dict[str, str] = {}  # Service name -> the uid of the one the bench made
        self._watching = threading.Event()

    # --- Services and the watch that times them ---

    @contextlib.contextmanager
    def ingress_watch(self) -> Iterator[None]:
        """A watch on the namespace's Services recording when each first has an address."""
        stop = threading.Event()
        w = watch.Watch()

        def run() -> None:
            while not stop.is_set():
                try:
                    for event in w.stream(self.core.list_namespaced_service, NS,
                                          timeout_seconds=30):  # fmt: skip
                        self._watching.set()
                        svc = event["object"]
                        uid, lb = svc.metadata.uid, svc.status.load_balancer
                        # By uid: late events of a deleted namesake never count.
                        if lb and lb.ingress and uid not in self.addressed:
                            self.addressed[uid] = time.monotonic()
                        if stop.is_set():
                            return
                except Exception as exc:
                    if not stop.is_set():
                        say(f"  watch restarted: {exc}")
                        time.sleep(0.2)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        procs.wait_until("the Service watch", self._watching.is_set, timeout=30)
        try:
            yield
        finally:
            stop.set()
            w.stop()

    def create(self, name: str) -> float:
        body = cluster.demo_service(name)
        body["metadata"]["labels"] = dict(BENCH_LABEL)
        t = time.monotonic()
        made = self.core.create_namespaced_service(NS, body)
        self.uids[name] = made.metadata.uid
        return t

    def seen(self, name: str) -> float | None:
        """When the Service the bench made as ``name`` first had an address, if it has."""
        return self.addressed.get(self.uids.get(name, ""))

    def wait_addressed(self, names: list[str], timeout: float = 120) -> dict[str, float]:
        procs.wait_until(f"{len(names)} Services addressed",
                         lambda: all(self.seen(n) is not None for n in names),
                         timeout=timeout)  # fmt: skip
        return {n: self.seen(n) or 0.0 for n in names}

    def delete_bench_services(self) -> None:
        selector = ",".join(f"{k}={v}" for k, v in BENCH_LABEL.items())
        names = [s.metadata.name for s in
                 self.core.list_namespaced_service(NS, label_selector=selector).items]  # fmt: skip
        for name in names:
            with contextlib.suppress(client.exceptions.ApiException):
                self.core.delete_namespaced_service(name, NS)
        procs.wait_until(
            "the bench's Services gone (finalizers removed)",
            lambda: not self.core.list_namespaced_service(NS, label_selector=selector).items,
            timeout=180,
            interval=0.5,
        )
        for name in names:
            self.addressed.pop(self.uids.pop(name, ""), None)

    def address_latency(self, trials: int) -> dict[str, Any]:
        took = []
        for i in range(trials):
            name = f"lat-{i}"
            t = self.create(name)
            took.append(self.wait_addressed([name], timeout=60)[name] - t)
        self.delete_bench_services()
        return summary(took)

    def bulk_trial(self) -> tuple[float, list[float], dict[str, Any]]:
        """``self.bulk`` Services at once: the time until all have an address, each one's
        latency, and the writes the peer made per Service meanwhile."""
        names = [f"bulk-{i}" for i in range(self.bulk)]
        wall0 = time.time()
        t0 = time.monotonic()
        created = {n: self.create(n) for n in names}
        at = self.wait_addressed(names, timeout=300)
        time.sleep(2)  # writes that follow the last address (status, events) count too
        each = [at[n] - created[n] for n in names]
        return max(at.values()) - t0, each, {"window": (wall0, time.time())}

    # --- processes ---

    def processes(self, arg: str) -> list[tuple[str, int]]:
        """(node, PID) of every container process whose command line has ``arg`` as a word
        or as its program (e.g. ``speaker`` or ``/speaker``), in the nodes' cgroups."""
        found = []
        for spec in self.state.node_specs():
            for pid in sorted(nodes.cgroup_pids(spec)):
                try:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
                except OSError:
                    continue
                if arg in argv[:3]:
                    found.append((spec.name, pid))
        return found

    def rss_mb(self, arg: str) -> dict[str, float]:
        out = {}
        for node, pid in self.processes(arg):
            with contextlib.suppress(OSError, ValueError, IndexError):
                status = Path(f"/proc/{pid}/status").read_text()
                kb = next(line.split()[1] for line in status.splitlines()
                          if line.startswith("VmRSS:"))  # fmt: skip
                out[f"{node}/{pid}"] = round(int(kb) / 1024, 1)
        return out

    # --- who answers ARP ---

    def demo_ip(self) -> str:
        return lab_mod.wait_external_ip(self.core, NS, "demo", timeout=120)

    def announcer(self, ip: str) -> str | None:
        macs = failover.arp_macs(self.lan, ip)
        return self.macs.get(next(iter(macs))) if len(macs) == 1 else None

    def arp_latency(self, ip: str, count: int) -> dict[str, Any]:
        out = self.lan.run(
            "client",
            [sys.executable, PROBE, "latency", f"--target={ip}", "--rate=100",
             f"--count={count}", f"--sender-ip={self.lan.host('client').ipv4}"],
            timeout=count / 100 + 60,
        )  # fmt: skip
        got = json.loads(out.stdout)
        return {**summary(got["latencies_ms"], 3), "lost": got["lost"], "unit": "ms",
                "values": []}  # fmt: skip

    @contextlib.contextmanager
    def arp_watch(self, ip: str) -> Iterator[Callable[[], list[arpwatch.Answers]]]:
        """Who answers ARP for ``ip``, asked every 50 ms from the client; yields a reader."""
        with tempfile.TemporaryDirectory(prefix="peers-arp-") as tmp:
            proc = procs.Process(
                "arpwatch",
                [sys.executable, "-m", "lbctl.lab.arpwatch", ip,
                 "--period", "0.05", "--duration", "600"],
                log=Path(tmp) / "arpwatch.log",
                netns=f"{self.state.prefix}-client",
            ).start()  # fmt: skip

            def read() -> list[arpwatch.Answers]:
                return arpwatch.parse(proc.log.read_text().splitlines())

            try:
                yield read
            finally:
                proc.stop()

    def speaker_pod(self, peer: Peer, node: str) -> Any:
        pods = self.core.list_namespaced_pod(peer.namespace, label_selector=peer.speaker_pods)
        live = [p for p in pods.items
                if p.spec.node_name == node and p.metadata.deletion_timestamp is None]  # fmt: skip
        return live[0] if live else None

    def settled(self, peer: Peer, ip: str, read: Callable[[], list[arpwatch.Answers]]) -> str:
        """Wait until every speaker is Ready and one node alone answered ARP for 3 s; its name."""

        def steady() -> bool:
            ok, _ = cluster.rollout_ready(self.apps, peer.namespace, *_workloads(peer), 3)
            if not ok:
                return False
            recent = [a for a in read() if a.t > time.monotonic() - 3]
            macs = {m for a in recent for m in a.macs}
            return len(recent) >= 30 and all(a.order for a in recent) and len(macs) == 1

        procs.wait_until(f"{peer.name} settled on one announcer", steady, timeout=240,
                         interval=0.5)  # fmt: skip
        recent = read()[-1]
        return self.macs[recent.order[0]]

    def takeover(self, read: Callable[[], list[arpwatch.Answers]], victim: str, since: float,
                 timeout: float = 90) -> float:  # fmt: skip
        """Seconds from ``since`` until another node answered ARP for the first time."""
        victim_mac = self.lan.host(victim).mac

        def other() -> float | None:
            for a in read():
                if a.t > since and a.order and victim_mac not in a.macs:
                    return a.t
            return None

        procs.wait_until("another node answers ARP", lambda: other() is not None,
                         timeout=timeout, interval=0.1)  # fmt: skip
        at = other()
        assert at is not None
        return at - since

    def fault_rounds(
        self,
        peer: Peer,
        rounds: int,
        what: str,
        fault: Callable[[str, Any], None],
        heal: Callable[[str, Any], None],
    ) -> dict[str, Any]:
        """``rounds`` times: wait until one node alone answers ARP for the demo's address,
        ``fault(node, its speaker Pod)``, time until another node answers, ``heal`` and wait
        until settled again. Silence and two-MAC answers count over the whole round."""
        ip = self.demo_ip()
        took, silences, conflicts = [], [], 0
        for i in range(rounds):
            with self.arp_watch(ip) as read:
                victim = self.settled(peer, ip, read)
                pod = self.speaker_pod(peer, victim)
                since = time.monotonic()
                fault(victim, pod)
                seconds = self.takeover(read, victim, since)
                say(f"  {peer.name} {what} {i + 1}/{rounds} on {victim}: another node answers "
                    f"ARP {seconds:.2f} s later")  # fmt: skip
                heal(victim, pod)
                self.settled(peer, ip, read)
                window = [a for a in read() if a.t > since - 1]
            took.append(seconds)
            silences.append(arpwatch.longest_silence(window))
            conflicts += len(arpwatch.conflicts(window))
        return {"takeover_s": summary(took), "longest_silence_s": summary(silences),
                "requests_with_two_macs": conflicts}  # fmt: skip

    def kill_rounds(self, peer: Peer, rounds: int) -> dict[str, Any]:
        """The announcing node dies: speaker process SIGKILLed, LAN link down. Then the link
        comes back and the killed speaker's Pod is replaced (no crash-loop back-off)."""

        def kill(victim: str, _pod: Any) -> None:
            pids = [pid for node, pid in self.processes(peer.speaker_arg) if node == victim]
            if not pids:
                raise RuntimeError(f"no {peer.name} speaker process on {victim}")
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.lab.set_link(victim, up=False)

        def heal(victim: str, pod: Any) -> None:
            time.sleep(2)  # the heir alone for a moment, as after a real death
            self.lab.set_link(victim, up=True)
            with contextlib.suppress(client.exceptions.ApiException):
                self.core.delete_namespaced_pod(pod.metadata.name, peer.namespace)

        return self.fault_rounds(peer, rounds, "kill", kill, heal)

    def handover_rounds(self, peer: Peer, rounds: int) -> dict[str, Any]:
        """The announcing speaker's Pod deleted (graceful: SIGTERM, its grace period); the
        DaemonSet's replacement takes over again."""

        def delete(_victim: str, pod: Any) -> None:
            self.core.delete_namespaced_pod(pod.metadata.name, peer.namespace)

        return self.fault_rounds(peer, rounds, "handover", delete, lambda _v, _p: None)

    # --- API writes ---

    def writes(self, peer: Peer, window: tuple[float, float]) -> dict[str, Any]:
        audit = self.lab.dir / "cp" / "audit" / "audit.log"
        lines = audit.read_text(errors="replace").splitlines() if audit.exists() else []
        start, end = window
        inside = [w for w in controlplane.audit_writes(lines) if start <= w.at <= end]
        by: dict[str, dict[str, int]] = {}
        for role, sa in (("controller", peer.controller_sa), ("speaker", peer.speaker_sa)):
            mine = [w for w in inside if w.user == peer.user(sa)]
            kinds: dict[str, int] = {}
            for w in mine:
                key = f"{w.verb} {w.resource}"
                kinds[key] = kinds.get(key, 0) + 1
            by[role] = kinds
        total = sum(sum(k.values()) for k in by.values())
        return {"seconds": round(end - start, 1), "writes": total, "by": by}

    # --- one peer, every figure ---

    def measure(self, peer: Peer) -> dict[str, Any]:
        out: dict[str, Any] = {}
        s = self.scale
        with self.ingress_watch():
            say(f"{peer.name}: Service -> address, {20 * s} Services one at a time")
            out["address_latency_s"] = self.address_latency(20 * s)
            say(f"  p50 {out['address_latency_s']['p50']} s")
            bulk_times, per_service, per_write = [], [], []
            for trial in range(2 * s):
                say(f"{peer.name}: {self.bulk} Services at once (trial {trial + 1})")
                took, each, info = self.bulk_trial()
                bulk_times.append(took)
                per_service += each
                w = self.writes(peer, info["window"])
                per_write.append(w)
                say(f"  all addressed in {took:.2f} s; {w['writes']} writes by {peer.name}")
                if trial == 0:
                    say(f"{peer.name}: steady state with {self.bulk + 1} Services: memory, writes")
                    out["memory_mb"] = {
                        "controller": self.rss_mb(peer.controller_arg),
                        "speaker": self.rss_mb(peer.speaker_arg),
                        "services": self.bulk + 1,
                    }
                    t0 = time.time()
                    time.sleep(30)
                    steady = self.writes(peer, (t0, time.time()))
                    steady["per_s"] = round(steady["writes"] / steady["seconds"], 3)
                    out["api_writes_steady"] = steady
                    say(f"  {steady['per_s']} writes/s; RSS {out['memory_mb']}")
                self.delete_bench_services()
            out["bulk"] = {
                "services": self.bulk,
                "all_addressed_s": summary(bulk_times),
                "each_s": {k: v for k, v in summary(per_service).items() if k != "values"},
                "writes_per_service": [round(w["writes"] / self.bulk, 2) for w in per_write],
                "writes": per_write,
            }
        ip = self.demo_ip()
        say(f"{peer.name}: ARP reply latency for {ip} from the client")
        out["arp_reply_ms"] = self.arp_latency(ip, 500 * s)
        say(f"  p50 {out['arp_reply_ms']['p50']} ms p99 {out['arp_reply_ms']['p99']} ms")
        say(f"{peer.name}: {3 * s} node deaths (speaker SIGKILL + link down)")
        out["node_death"] = self.kill_rounds(peer, 3 * s)
        say(f"{peer.name}: {3 * s} graceful handovers (speaker Pod deleted)")
        out["handover"] = self.handover_rounds(peer, 3 * s)
        return out


def _workloads(peer: Peer) -> tuple[str, str]:
    if peer is METALLB:
        return metallb.CONTROLLER, metallb.SPEAKER
    return "lbctl-controller", "lbctl-speaker"


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())  # fmt: skip
    return {"cpus": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "load_average_at_start": os.getloadavg()}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("bench/results/peers.json"))
    ap.add_argument("--bulk", type=int, default=30, help="Services created at once (<= 50)")
    args = ap.parse_args()
    scale = max(1, int(os.environ.get("LBCTL_PEERS_SCALE", "1")))
    lan.keep_with_this_process()  # a killed run blocks no later one
    procs.exit_on_sigterm()  # a killed run still takes its lab down
    started = time.monotonic()
    say("MetalLB: binaries, images and manifest (built once, then cached)")
    built = metallb.build(say)
    work = Path(tempfile.mkdtemp(prefix="lbpeers-", dir="/tmp"))  # short: unix sockets below
    os.environ.setdefault("LBCTL_LAB_PREFIX", "lbpeer")
    lab = lab_mod.Lab(work / "lab", say=lambda m: say(f"lab: {m}"))
    results: dict[str, Any] = {
        "kubernetes": assets.kube_version(),
        "metallb": built.version,
        "metallb_pinned_dependencies": built.pinned,
        "machine": machine(),
        "scale": scale,
    }
    try:
        lab.up()
        bench = Bench(lab, scale, args.bulk)
        results["lbctl"] = bench.measure(LBCTL)
        say("switch: lbctl out, MetalLB in")
        metallb.replace_lbctl(lab, built, lambda m: say(f"switch: {m}"))
        results["metallb_results"] = bench.measure(METALLB)
    except BaseException:
        say(f"failed:\n{traceback.format_exc()}")  # before the teardown, which may hang too
        raise
    finally:
        say("lab down")
        lab.down(quiet=True)
        with contextlib.suppress(OSError):
            work.rmdir()
    results["minutes"] = round((time.monotonic() - started) / 60, 1)
    results["peers"] = {"lbctl": results.pop("lbctl"), "metallb": results.pop("metallb_results")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    say(f"written {args.out} in {results['minutes']} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
