"""Faults with real processes: controllers killed and frozen, API server outages, etcd compaction.

Each test churns Services (create, edit, delete) while the fault strikes, then checks from
outside: every remaining Service holds exactly one pool address, no address is held twice, no
Service's address ever changed or vanished while it lived, and ``lbctl check`` finds nothing.
Counts are reduced unless LBCTL_FULL=1 (``LBCTL_FULL=1 scripts/test -m slow``).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kube_helpers import (
    ControllerProcess,
    controller_argv,
    lbctl_check,
    put_config,
    service,
    wait_for,
)
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from lbctl import leases
from lbctl.controller import ControllerSettings
from lbctl.kube.informer import Informer
from lbctl.lab import controlplane, procs

pytestmark = pytest.mark.slow

POOL_NET = ipaddress.ip_network("198.18.0.0/21")  # 2048 addresses: room for the full count
POOL = f"pools: [{{name: faults, addresses: ['{POOL_NET}']}}]"
KILLS = 10
WORKERS = ControllerSettings.model_fields["workers"].default  # writes in flight at most

Start = Callable[..., ControllerProcess]


# --- what the tests do to the cluster ---


class Churn:
    """Creates Services s0, s1, ... up to ``limit`` on its own thread, and edits and deletes
    some of them. Edits change labels or port numbers, never what decides an address. While
    held back by ``limit`` (the tests pace creations to their faults) it keeps editing."""

    def __init__(self, core: client.CoreV1Api, ns: str, count: int, limit: int, seed: int) -> None:
        self.core, self.ns, self.count, self.limit = core, ns, count, limit
        self.created = 0
        self.deleted: set[str] = set()
        self.edits = 0
        self.error: BaseException | None = None
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    @property
    def expected(self) -> set[str]:
        """The Services that should exist once everything settles."""
        return {f"s{i}" for i in range(self.created)} - self.deleted

    def start(self) -> Churn:
        self._thread.start()
        return self

    def finish(self, timeout: float) -> None:
        """Let every creation through and wait for the last one."""
        self.limit = self.count
        self._thread.join(timeout)
        if self.error:
            raise self.error
        assert not self._thread.is_alive(), f"churn still running after {timeout} s"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and self.created < self.count:
                if self.created >= self.limit:
                    self._edit()
                    self._stop.wait(0.02)  # a gentle pace: the controller needs the CPU too
                    continue
                body = service(f"s{self.created}")
                self._call(lambda b=body: self.core.create_namespaced_service(self.ns, b))
                self.created += 1
                roll = self._rng.random()
                if roll < 0.5:
                    self._edit()
                elif roll < 0.7 and len(self.deleted) < self.created // 4:
                    self._delete()
        except BaseException as exc:
            self.error = exc

    def _live(self) -> list[str]:
        return sorted(self.expected)

    def _edit(self) -> None:
        live = self._live()
        if not live:
            return
        name = self._rng.choice(live)
        self.edits += 1
        body: Any
        if self._rng.random() < 0.5:
            body = {"metadata": {"labels": {"churn": str(self.edits)}}}
        else:
            # A JSON patch (a list) replaces the port in place; a merge would add a second one.
            body = [{"op": "replace", "path": "/spec/ports/0/port", "value": 1000 + self.edits}]
        self._call(lambda: self.core.patch_namespaced_service(name, self.ns, body))

    def _delete(self) -> None:
        name = self._rng.choice(self._live())
        # Raw: 1.20 answers a Service delete with a Status the client can't read.
        self._call(
            lambda: self.core.delete_namespaced_service(name, self.ns, _preload_content=False)
        )
        self.deleted.add(name)

    def _call(self, op: Callable[[], object]) -> None:
        """One API call; through an API server outage, again until it goes through."""
        while not self._stop.is_set():
            try:
                op()
                return
            except ApiException as exc:
                if exc.status in (404, 409):  # a retried create or delete had gone through
                    return
                if exc.status < 500:
                    raise
            except (urllib3.exceptions.HTTPError, OSError):
                pass  # the API server is down: try again
            self._stop.wait(0.2)


class AddressLog:
    """Every status address each Service (by uid) showed, in order, seen through a watch."""

    def __init__(self, core: client.CoreV1Api, ns: str) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, list[tuple[str, ...]]] = {}
        self._names: dict[str, str] = {}
        self._stop = threading.Event()
        self._informer = Informer(
            "address-log", core.list_namespaced_service, self._seen, max_backoff=1.0, namespace=ns
        )
        self._thread = threading.Thread(
            target=self._informer.run, args=(self._stop,), name="address-log", daemon=True
        )

    def start(self) -> AddressLog:
        self._thread.start()
        wait_for("the address log's first list", self._informer.synced.is_set)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._informer.stop()
        self._thread.join(10)

    def _seen(self, kind: str, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            return  # releasing the address of a Service being deleted is no change
        lb = (obj.get("status") or {}).get("loadBalancer") or {}
        ips = tuple(str(i.get("ip")) for i in lb.get("ingress") or [])
        with self._lock:
            history = self._history.setdefault(meta["uid"], [])
            self._names[meta["uid"]] = meta["name"]
            if not history or history[-1] != ips:
                history.append(ips)

    def holding(self) -> set[str]:
        """The Services (uids) that hold an address now."""
        with self._lock:
            return {uid for uid, h in self._history.items() if h[-1]}

    def changed(self) -> dict[str, list[tuple[str, ...]]]:
        """Services whose address, once set, changed or went away: the history of each."""
        with self._lock:
            out = {}
            for uid, history in self._history.items():
                first = next((i for i, ips in enumerate(history) if ips), None)
                if first is not None and len(history) > first + 1:
                    out[self._names[uid]] = history
            return out


@dataclass
class NotYet:
    """A falsy probe result that says what is still missing (wait_for shows it on timeout)."""

    why: str

    def __bool__(self) -> bool:
        return False


def settled(core: client.CoreV1Api, ns: str, churn: Churn) -> dict[str, list[str]] | NotYet:
    """Each Service's addresses once deleted Services are gone and the others hold one each."""
    svcs = core.list_namespaced_service(ns).items
    names = {s.metadata.name for s in svcs}
    if names != churn.expected:
        extra, missing = sorted(names - churn.expected), sorted(churn.expected - names)
        return NotYet(f"still there: {extra[:5]}; missing: {missing[:5]}")
    held = {s.metadata.name: [i.ip for i in s.status.load_balancer.ingress or []] for s in svcs}
    wrong = {name: ips for name, ips in held.items() if len(ips) != 1}
    return (
        NotYet(f"{len(wrong)} without one address, e.g. {list(wrong.items())[:5]}")
        if wrong
        else held
    )


def assert_one_pool_address_each(held: dict[str, list[str]]) -> None:
    addresses = [ips[0] for ips in held.values()]
    assert [a for a in addresses if ipaddress.ip_address(a) not in POOL_NET] == []
    assert [a for a, n in Counter(addresses).items() if n > 1] == [], "an address held twice"


def stand_in_speaker(api: client.ApiClient, ns: str) -> None:
    """A live speaker Lease on a Node: no speakers run here, and ``lbctl check`` would otherwise
    report every address as one no speaker can announce (a Lease without a Node is not
    eligible either)."""
    core = client.CoreV1Api(api)
    if not core.list_node(field_selector="metadata.name=stand-in").items:
        core.create_node({"metadata": {"name": "stand-in"}})
    client.CoordinationV1Api(api).create_namespaced_lease(
        ns,
        client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=leases.lease_name("stand-in"),
                labels={leases.LABEL: leases.LABEL_VALUE},
            ),
            spec=client.V1LeaseSpec(
                holder_identity="stand-in",
                renew_time=datetime.datetime.now(datetime.UTC),
                lease_duration_seconds=3600,
            ),
        ),
    )


def prepare(api: client.ApiClient, ns: str) -> None:
    put_config(client.CoreV1Api(api), ns, POOL)
    stand_in_speaker(api, ns)


# --- controllers on control planes of these tests' own (``planes``, in tests/conftest.py) ---


@pytest.fixture
def controllers(
    planes: Callable[..., controlplane.ControlPlane], tmp_path: Path
) -> Iterator[Callable[[controlplane.ControlPlane, str, str], ControllerProcess]]:
    """``controllers(plane, namespace, identity)`` against one of ``planes``; stopped first."""
    started: list[ControllerProcess] = []

    def start(cp: controlplane.ControlPlane, ns: str, identity: str) -> ControllerProcess:
        port = procs.free_port()
        proc = procs.Process(
            f"controller-{identity}",
            controller_argv(cp.kubeconfig, ns, identity, port),
            log=tmp_path / f"controller-{identity}.log",
        )
        ctl = ControllerProcess(proc.start(), port, identity)
        started.append(ctl)
        wait_for(f"{identity} to serve /readyz", lambda: ctl.proc.check_alive() or ctl.ready())
        return ctl

    try:
        yield start
    finally:
        for ctl in started:
            ctl.proc.signal(signal.SIGCONT)  # a frozen process would sit on its SIGTERM
            ctl.proc.stop()


def own_namespace(cp: controlplane.ControlPlane) -> tuple[client.ApiClient, str]:
    api = config.new_client_from_config(config_file=str(cp.kubeconfig))
    ns = "faults"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=ns))
    )
    prepare(api, ns)
    return api, ns


def settle_and_audit(
    core: client.CoreV1Api, kubeconfig: Path, ns: str, churn: Churn, log: AddressLog
) -> dict[str, list[str]]:
    """The end state of every test: the invariants of the module docstring."""
    churn.finish(timeout=60 + churn.count * 0.2)
    held = wait_for(
        "every remaining Service to hold one address, and deleted ones to be gone",
        lambda: settled(core, ns, churn),
        timeout=60 + churn.count * 0.15,
        interval=0.5,
    )
    assert_one_pool_address_each(held)
    assert log.changed() == {}, "a Service's address changed or vanished while it lived"
    assert lbctl_check(kubeconfig, ns) == (0, [])
    return held


# --- the tests ---


def test_sigkill_ten_times_under_churn_changes_no_address_and_shares_none(
    core: client.CoreV1Api,
    api_client: client.ApiClient,
    apiserver: controlplane.ControlPlane,
    namespace: str,
    run_controller: Start,
    full_counts: bool,
) -> None:
    count = 1000 if full_counts else 200
    batch = count // (KILLS + 1)  # creations per controller life; the kills land mid-batch
    prepare(api_client, namespace)
    rng = random.Random(6)
    log = AddressLog(core, namespace).start()
    churn = Churn(core, namespace, count, limit=batch, seed=6).start()
    kept: set[str] = set()  # Services that held an address when a controller died
    try:
        ctl = run_controller("ctl-0")
        for kill in range(1, KILLS + 1):
            want = rng.randint(1, batch)  # die early in the backlog, or late
            wait_for(
                f"kill {kill}: churn mid-batch and the controller {want} addresses in",
                # Status writes: a new leader's fence writes come first and would end a life
                # before it hands out anything.
                lambda kill=kill, want=want, ctl=ctl: (
                    churn.created >= (kill - 1) * batch + batch // 2
                    and ctl.writes("status") >= want
                ),
                timeout=60,
            )
            ctl.proc.kill()
            kept |= log.holding()
            churn.limit = count if kill == KILLS else (kill + 1) * batch
            # Even kills bring a new Pod (it waits for the Lease to expire); odd ones a
            # restarted container with the same identity (it takes over at once).
            ctl = run_controller(f"ctl-{kill // 2}")
        held = settle_and_audit(core, apiserver.kubeconfig, namespace, churn, log)
    finally:
        churn.stop()
        log.stop()
    assert len(kept) > KILLS, "the kills should have caught Services holding addresses"
    assert len(held) == len(churn.expected) >= count * 3 // 4
    # Deleting everything releases everything (and leaves the fixture's cleanup little to do).
    for name in held:
        core.delete_namespaced_service(name, namespace, _preload_content=False)
    wait_for(
        "every Service deleted (finalizers removed)",
        lambda: not core.list_namespaced_service(namespace).items,
        timeout=30 + count * 0.1,
        interval=0.5,
    )


def test_api_server_restarts_and_compaction_the_controller_recovers_by_itself(
    planes: Callable[..., controlplane.ControlPlane],
    controllers: Callable[[controlplane.ControlPlane, str, str], ControllerProcess],
    full_counts: bool,
) -> None:
    count = 1000 if full_counts else 200
    outages = 2
    cp = planes()
    api, ns = own_namespace(cp)
    core = client.CoreV1Api(api)
    ctl = controllers(cp, ns, "ctl-a")
    pid = ctl.proc.pid
    step = count // (outages + 1)
    log = AddressLog(core, ns).start()
    churn = Churn(core, ns, count, limit=step, seed=2).start()
    try:
        for outage in range(1, outages + 1):
            wait_for(
                f"outage {outage}: churn under way and the controller writing",
                lambda outage=outage: (
                    churn.created >= (outage - 1) * step + step // 2
                    and ctl.writes() >= outage * step // 2
                ),
                timeout=60,
            )
            cp.stop_apiserver(crash=outage % 2 == 0)  # a clean stop, then a crash
            # Watches that resume from before the outage find their versions compacted.
            cp.compact_etcd()
            churn.limit += step  # the churn keeps trying through the outage
            before = ctl.writes()
            cp.start_apiserver()
            wait_for("its writes again", lambda b=before: ctl.writes() > b, timeout=60)
        settle_and_audit(core, cp.kubeconfig, ns, churn, log)
    finally:
        churn.stop()
        log.stop()
        api.close()
    assert ctl.proc.pid == pid and ctl.proc.alive(), "the same process recovers: no restart"
    # Its watches resumed from before each outage, into compacted history: 410 Gone, relist.
    assert ctl.proc.log.read_text().count("watch expired (410 Gone)") >= outages


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources: [{group: "", resources: [services, services/status, events]}]
  - level: None
"""


@dataclass(frozen=True)
class Write:
    """One write by a controller, as the API server's audit log has it."""

    at: datetime.datetime  # when the API server received it
    identity: str  # controllers name themselves in their user agent: lbctl-controller/<id>
    what: str  # verb, resource and name
    service: str | None  # the Service written (metadata or status), if one
    code: int

    @property
    def applied(self) -> bool:
        return self.code < 300


def controller_writes(audit_log: Path) -> list[Write]:
    found = []
    for line in audit_log.read_text().splitlines():
        entry = json.loads(line)
        agent = entry.get("userAgent", "")
        if entry.get("stage") != "ResponseComplete" or not agent.startswith("lbctl-controller/"):
            continue
        ref = entry["objectRef"]
        resource = "/".join(filter(None, (ref["resource"], ref.get("subresource"))))
        received = entry["requestReceivedTimestamp"].replace("Z", "+00:00")
        found.append(
            Write(
                at=datetime.datetime.fromisoformat(received),
                identity=agent.split("/", 1)[1],
                what=f"{entry['verb']} {resource} {ref.get('name', '')}",
                service=ref.get("name") if ref["resource"] == "services" else None,
                code=int(entry.get("responseStatus", {}).get("code", 0)),
            )
        )
    return sorted(found, key=lambda w: w.at)


@dataclass(frozen=True)
class Freeze:
    old: str  # the leader that was frozen
    new: str  # the standby that took over
    frozen_at: datetime.datetime
    resumed_at: datetime.datetime


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def freeze_the_leader(
    leader: ControllerProcess, standby: ControllerProcess, churn: Churn, half: int
) -> Freeze:
    """Freeze the leader mid-write until the standby leads and writes, then let it run on
    beside the new leader: it must see it lost the lease and decide nothing more."""
    churn.limit += half  # work for the leader to be in the middle of
    busy = leader.writes()
    wait_for(
        f"churn under way and {leader.identity} writing",
        lambda: churn.created >= churn.limit - half // 2 and leader.writes() > busy,
        timeout=60,
    )
    frozen_at = now()
    leader.proc.signal(signal.SIGSTOP)  # as in a long GC pause or a VM stall
    churn.limit += half  # a backlog for whoever leads next
    before = standby.writes()
    wait_for(
        f"{standby.identity} to take over and write",
        lambda: standby.metric("lbctl_leader") == 1 and standby.writes() > before,
        timeout=30,
    )
    resumed_at = now()
    leader.proc.signal(signal.SIGCONT)
    resumed = leader.writes()
    churn.limit += half  # more work while the other leads: every chance for a stale write
    since = standby.writes()
    wait_for(
        f"{standby.identity} to write on after {leader.identity} resumed",
        lambda: churn.created >= churn.limit and standby.writes() > since,
        timeout=60,
    )
    assert leader.metric("lbctl_leader") == 0
    # Its write counter counts leader checks passed: none since it resumed.
    assert leader.writes() == resumed, f"{leader.identity} decided a write after resuming"
    return Freeze(leader.identity, standby.identity, frozen_at, resumed_at)


def test_a_leader_frozen_past_its_lease_decides_nothing_and_overwrites_nothing_on_resuming(
    planes: Callable[..., controlplane.ControlPlane],
    controllers: Callable[[controlplane.ControlPlane, str, str], ControllerProcess],
    tmp_path: Path,
    full_counts: bool,
) -> None:
    count = 1000 if full_counts else 200
    rounds = 10 if full_counts else 4
    policy, audit_log = tmp_path / "audit-policy.yaml", tmp_path / "audit.log"
    policy.write_text(AUDIT_POLICY)
    cp = planes(apiserver_args=[f"--audit-policy-file={policy}", f"--audit-log-path={audit_log}"])
    api, ns = own_namespace(cp)
    core = client.CoreV1Api(api)
    leader = controllers(cp, ns, "ctl-a")
    wait_for("ctl-a to lead", lambda: leader.metric("lbctl_leader") == 1)
    standby = controllers(cp, ns, "ctl-b")
    half = count // (3 * rounds + 1)  # each round lets three halves through
    log = AddressLog(core, ns).start()
    churn = Churn(core, ns, count, limit=half, seed=3).start()
    freezes = []
    try:
        for _ in range(rounds):
            freezes.append(freeze_the_leader(leader, standby, churn, half))
            leader, standby = standby, leader
        settle_and_audit(core, cp.kubeconfig, ns, churn, log)
    finally:
        churn.stop()
        log.stop()
        api.close()
    writes = controller_writes(audit_log)
    ends = [f.frozen_at for f in freezes[1:]] + [now()]
    for freeze, end in zip(freezes, ends, strict=True):
        # A write that had passed the leader check when the process froze goes out when it
        # resumes (at most one per worker); nothing else may. Each carries the version it was
        # decided on, so none may land on a Service the new leader wrote meanwhile.
        late = [w for w in writes if w.identity == freeze.old and freeze.resumed_at <= w.at < end]
        assert len(late) <= WORKERS, f"{freeze.old} wrote on beside {freeze.new}: {late}"
        overwrote = [
            w
            for w in late
            if w.applied
            and any(
                v.identity == freeze.new and v.service == w.service and v.applied
                for v in writes
                if freeze.frozen_at <= v.at < w.at
            )
        ]
        assert overwrote == [], f"{freeze.old} overwrote what {freeze.new} wrote"
