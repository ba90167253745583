"""The controller process: informers, leader election, the allocator and the writer, wired (I/O).

Decisions live in ``allocator`` and ``reconcile``; this module only moves data between them
and the API: Services, Nodes and the pool ConfigMap, and the speakers' Leases for the address
conflicts they report (``onConflict: reallocate``). Gates: nothing is allocated before this
replica leads, the caches have synced, a valid config exists, and every Service's status has
been restored into the allocator.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import socket
import threading
import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import Field

from lbctl import config, ipam, leases, objects, reconcile, waiters
from lbctl.allocator import Allocator, Outcome, PoolFamily, Reason, ServiceKey, ServiceRequest
from lbctl.kube import informer, leader, speakers
from lbctl.kube.informer import Informer, Obj, obj_key
from lbctl.kube.writer import NotLeader, ServiceWriter
from lbctl.metrics import ControllerMetrics, serve
from lbctl.settings import PoolSettings
from lbctl.workqueue import WorkQueue

log = logging.getLogger(__name__)


class ControllerSettings(PoolSettings):
    identity: str = Field(
        default_factory=socket.gethostname,
        description="this replica's name in the Lease (the Pod name)",
    )
    lease_name: str = Field(default="lbctl-controller", description="leader-election Lease")
    lease_duration: int = Field(default=15, ge=1, description="Lease duration, seconds")
    renew_deadline: float = Field(default=10.0, gt=0, description="stop leading after, s")
    retry_period: float = Field(default=2.0, gt=0, description="Lease retry period, seconds")
    metrics_address: str = Field(default="0.0.0.0", description="metrics/probes address")
    workers: int = Field(
        default=4, ge=1, le=64, description="API writes in parallel (decisions stay one at a time)"
    )
    metrics_port: int = Field(
        default=7472, ge=0, le=65535, description="metrics/probes port; 0 turns them off"
    )
    resync_period: float = Field(
        default=300.0,
        ge=0,
        description="re-decide every Service this often, seconds (a backstop); 0: never",
    )


class Controller:
    def __init__(
        self,
        api: client.ApiClient,
        settings: ControllerSettings,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        self.metrics = metrics or ControllerMetrics()
        self.handling = objects.Handling(settings.lb_class, settings.class_less)
        core = client.CoreV1Api(api)
        self.queue: WorkQueue[reconcile.Item] = WorkQueue()
        self.services = Informer("services", core.list_service_for_all_namespaces, self._on_service)
        self.configmaps = informer.config_map(
            api, settings.namespace, settings.config_map, self._on_configmap
        )
        self.nodes = Informer("nodes", core.list_node, self._on_node)
        # Pools may admit namespaces by label (namespaceSelector): their labels are an input.
        self.namespaces = Informer("namespaces", core.list_namespace, self._on_namespace)
        self._namespace_labels: dict[str, dict[str, str] | None] = {}  # as last seen
        self.leases = speakers.informer(api, settings.namespace, self._on_lease)
        self.informers = (self.services, self.configmaps, self.nodes, self.namespaces, self.leases)
        self.elector = leader.LeaderElector(
            client.CoordinationV1Api(api),
            namespace=settings.namespace,
            name=settings.lease_name,
            identity=settings.identity,
            timings=leader.LeaseTimings(
                settings.lease_duration, settings.renew_deadline, settings.retry_period
            ),
            on_change=lambda leading: self.metrics.leader.set(1 if leading else 0),
        )
        self.writer = ServiceWriter(
            api,
            may_write=self.elector.is_leader,
            host=settings.identity,
            on_write=lambda kind: self.metrics.writes.labels(kind).inc(),
        )
        self.allocator = Allocator(None)
        self._lock = threading.RLock()  # allocator, config and bookkeeping
        self._config = config.LastGood()  # the allocator's config, the last one that parsed
        self._restored = False
        self._leading_ready = False  # caches loaded, status restored (if there is a config)
        self._expected: dict[ServiceKey, int] = {}  # key → resourceVersion our last write left
        self.waiters = waiters.Waiters()  # pending Services, by what could unblock them
        self._handoffs: list[PoolFamily] = []  # hand-offs whose waiter was just decided
        self._pending: dict[ServiceKey, Reason] = {}  # Services without an address, and why
        self._last_events: dict[ServiceKey, tuple[reconcile.Event, ...]] = {}
        self._seen_at: dict[ServiceKey, float] = {}
        self.metrics.config_stale.set(1)

    # --- informer callbacks (informer threads): only enqueue ---

    def _on_service(self, kind: str, obj: Obj) -> None:
        key = ServiceKey(obj_key(obj))
        self._seen_at.setdefault(key, time.monotonic())
        self.queue.add(key)

    def _on_node(self, kind: str, obj: Obj) -> None:
        self.queue.add(reconcile.Input.NODES)

    def _on_configmap(self, kind: str, obj: Obj) -> None:
        self.queue.add(reconcile.Input.CONFIG)

    def _on_lease(self, kind: str, obj: Obj) -> None:
        self.queue.add(reconcile.Input.LEASES)

    def _on_namespace(self, kind: str, obj: Obj) -> None:
        """Re-decide the Services of a namespace whose labels changed (or that came or went)."""
        name = obj_key(obj)
        labels = None if kind == "DELETED" else objects.labels_of(obj)
        # Only this informer's thread reads and writes the map.
        if name in self._namespace_labels and self._namespace_labels[name] == labels:
            return
        self._namespace_labels[name] = labels
        for svc in self.services.items():
            if objects.meta_of(svc).get("namespace") == name:
                self.queue.add(ServiceKey(obj_key(svc)))

    def _request(self, obj: Obj) -> ServiceRequest:
        """A Service's request, with its namespace's labels as the cache holds them."""
        namespace = objects.meta_of(obj).get("namespace")
        return objects.request_of(obj, self.namespaces.get(str(namespace)))

    # --- readiness ---

    def ready(self) -> bool:
        synced = all(i.synced.is_set() for i in self.informers)
        return synced and (self._leading_ready or not self.elector.is_leader())

    # --- the main loop ---

    def run(self, stop: threading.Event) -> None:
        server = serve(self.metrics.registry, self.settings, ready=self.ready)
        threads = [
            threading.Thread(target=t.run, args=(stop,), name=t.name, daemon=True)
            for t in self.informers
        ]
        threads.append(
            threading.Thread(target=self.elector.run, args=(stop,), name="leader", daemon=True)
        )
        for t in threads:
            t.start()
        try:
            while not stop.is_set():
                if not self.elector.is_leader():
                    stop.wait(0.1)
                    continue
                self._lead(stop)
        finally:
            self.elector.release()
            for inf in self.informers:
                inf.stop()
            self.queue.close()
            if server:
                server.shutdown()

    def _lead(self, stop: threading.Event) -> None:
        """Work while leading; on losing the lease, forget everything and stand by."""
        log.info("%s: leading", self.settings.identity)
        for inf in self.informers:
            while not inf.synced.wait(0.1):
                if stop.is_set() or not self.elector.is_leader():
                    return
        try:
            fenced = self._fence_pending()
        except Exception as exc:  # NotLeader, or the API server gone: stand by and retry
            log.warning("fencing Services on taking over: %s; trying again", exc)
            stop.wait(1.0)
            return
        with self._lock:
            self.allocator = Allocator(None)
            self.waiters = waiters.Waiters()
            self._handoffs = []
            self._expected.clear()
            self._restored = False
            self._config = config.LastGood()
            self._load_config()
            self._load_nodes()
            self._load_conflicts()
            self._restore_all(fenced)
            self._requeue_all()
            self._leading_ready = True
            self.metrics.address_assigned.source = self._assignments
        # The term ends once, for every thread of it: were each to ask the elector itself, a
        # lease renewed just past its deadline would stop some (the workers) and not others
        # (the resync), and this term would wait on the rest for good, leading with no worker.
        term = threading.Event()
        workers = [
            threading.Thread(target=self._work, args=(term,), name=f"worker-{i}", daemon=True)
            for i in range(self.settings.workers)
        ]
        if self.settings.resync_period > 0:
            workers.append(
                threading.Thread(target=self._resync, args=(term,), name="resync", daemon=True)
            )
        for w in workers:
            w.start()
        while not stop.is_set() and self.elector.is_leader():
            stop.wait(0.1)
        term.set()
        for w in workers:
            w.join()
        log.info("%s: no longer leading", self.settings.identity)
        self._restored = self._leading_ready = False
        with self._lock:
            self._pending.clear()
            self.metrics.forget_allocations()

    def _work(self, term: threading.Event) -> None:
        """One worker of a leading term: decisions one at a time under the lock, API writes
        in parallel. A write after the lease lapsed is refused (``ServiceWriter``'s check)."""
        while not term.is_set():
            key = self.queue.get(timeout=0.2)
            if key is None:
                continue
            try:
                with self._lock:
                    todo = self._handle(key)
                if todo is not None:
                    self._write(*todo)
                elif not isinstance(key, reconcile.Input):
                    self._seen_at.pop(key, None)  # nothing to write: no latency to record
            except Exception as exc:  # one bad Service must not stop the others
                self._retry(key, exc)
            finally:
                self.queue.done(key)

    def _resync(self, term: threading.Event) -> None:
        """A backstop: re-decide every Service now and then, in case a wake-up was missed."""
        while not term.wait(self.settings.resync_period):
            self.queue.add(reconcile.Input.LEASES)  # a speaker's Lease may have expired
            self._requeue_all()

    def _retry(self, key: reconcile.Item, exc: Exception) -> None:
        if not isinstance(key, reconcile.Input):
            # The writes failed before their Events went out: the retry must send them again.
            self._last_events.pop(key, None)
        if isinstance(exc, NotLeader):
            retry = reconcile.after_failure(reconcile.Failure.NOT_LEADER)
        elif isinstance(exc, ApiException):
            retry = reconcile.after_failure(reconcile.Failure.API_ERROR, exc.status)
        else:
            retry = reconcile.after_failure(reconcile.Failure.OTHER)
        if retry.warn:
            name = key if isinstance(key, str) else key.value
            log.warning(
                "%s: %s; retrying", name, exc if isinstance(exc, ApiException) else repr(exc)
            )
        if retry.seconds > 0:
            self.queue.add_after(key, retry.seconds)
        else:
            self.queue.add(key)

    def _handle(self, key: reconcile.Item) -> tuple[ServiceKey, Obj, reconcile.Writes] | None:
        """Decide (under the lock); return the writes to make for a Service, if any."""
        todo = None
        if key is reconcile.Input.CONFIG:
            outcome = reconcile.after_input(self._load_config())
            if isinstance(outcome, reconcile.ReprocessAll):
                self._restore_all()
                self._requeue_all()
        elif key is reconcile.Input.NODES:
            if isinstance(reconcile.after_input(self._load_nodes()), reconcile.ReprocessAll):
                self._requeue_all()
        elif key is reconcile.Input.LEASES:
            for ip in self._load_conflicts():
                for holder in self.allocator.holders(ip):
                    self.queue.add(holder)
        else:
            todo = self._reconcile(key)
        # Wake the pending Services this change may have unblocked, and only those.
        handoffs, self._handoffs = self._handoffs, []
        for waiter in waiters.woken(self.waiters, self.allocator, handoffs):
            self.queue.add(waiter)
        self._update_metrics()
        return todo

    def _requeue_all(self) -> None:
        for obj in self.services.items():
            self.queue.add(ServiceKey(obj_key(obj)))

    # --- config and nodes ---

    def _load_config(self) -> bool:
        """Load the ConfigMap; True when a new valid config took effect."""
        obj = self.configmaps.get(f"{self.settings.namespace}/{self.settings.config_map}")
        if obj is None:
            if self.allocator.config is None:
                log.warning(
                    "no ConfigMap %s/%s yet: nothing is allocated",
                    self.settings.namespace,
                    self.settings.config_map,
                )
            return False
        parsed = self._config.update(objects.configmap_data(obj))
        if parsed is None:
            return False
        if isinstance(parsed, config.ConfigError):
            exc = parsed
            self.metrics.config_stale.set(1)
            kept = (
                "the last good config stays in force"
                if self.allocator.config
                else ("nothing is allocated until it is fixed")
            )
            log.error(
                "invalid config %s/%s: %s; %s",
                self.settings.namespace,
                self.settings.config_map,
                exc,
                kept,
            )
            self.writer.event(
                obj,
                reconcile.Event(reconcile.EventType.WARNING, "InvalidConfig", f"{exc}; {kept}"),
                kind="ConfigMap",
            )
            return False
        self.metrics.config_stale.set(0)
        self.allocator.set_config(parsed)
        self.metrics.addresses_total.clear()  # refilled at once; a removed pool drops out
        self.metrics.addresses_in_use.clear()
        log.info("config loaded: %d pool(s)", len(parsed.pools))
        return True

    def _load_nodes(self) -> bool:
        reserved: dict[ipam.IP, str] = {}
        for node in self.nodes.items():
            reserved.update(objects.node_addresses(node))
        if reserved == self.allocator.reserved:
            return False
        self.allocator.set_reserved(reserved)
        return True

    def _load_conflicts(self) -> set[ipam.IP]:
        """The addresses the speakers' Leases say another host uses (expired Leases aside);
        returns those whose conflict began, ended or changed: their holders are re-decided."""
        found = leases.conflicts(self.leases.items(), leases.wall_now())
        changed = self.allocator.set_conflicts(leases.by_address(found))
        for ip in sorted(changed, key=str):
            if ip in self.allocator.conflicts:
                log.warning("%s is in use by another host (%s)", ip, self.allocator.conflicts[ip])
            else:
                log.info("%s: no speaker reports a conflict any more", ip)
        return changed

    def _fence_pending(self) -> dict[str, Obj]:
        """Before deciding anything as the new leader, fence every handled Service that has
        no address yet: the previous leader may have decided one for it and still be about
        to send it (paused past its lease). A write that landed before the fence is in the
        answer and is restored; one that comes after fails on the resourceVersion."""
        term = f"{self.settings.identity} {time.time():.3f}"
        fenced = {}
        for obj in self.services.items():
            if not self.handling.handles(obj) or objects.deleting(obj):
                continue
            if objects.request_of(obj).current:
                continue
            now = self.writer.fence(obj, term)
            if now is not None:
                fenced[obj_key(now)] = now
        if fenced:
            log.info("fenced %d Service(s) without an address", len(fenced))
        return fenced

    def _restore_all(self, fresher: dict[str, Obj] | None = None) -> None:
        """Claim every status address, oldest Service first, before allocating anything.

        ``fresher``: objects read after the cache (the fence's answers) take precedence."""
        if self._restored or self.allocator.config is None:
            return
        objs = {obj_key(o): o for o in self.services.items()} | (fresher or {})
        handled = [o for o in objs.values() if self.handling.handles(o) and not objects.deleting(o)]
        requests = sorted((self._request(o) for o in handled), key=lambda r: r.age)
        for req in requests:
            self.allocator.restore(req)
        self._restored = True
        log.info("restored %d Service(s) from status", len(requests))
        self._requeue_all()

    # --- one Service ---

    def _reconcile(self, key: ServiceKey) -> tuple[ServiceKey, Obj, reconcile.Writes] | None:
        obj = self.services.get(key)
        skey = key
        if obj is None:  # deleted; any finalizer was handled while it was terminating
            self._release(skey)
            return None
        if objects.deleting(obj) or not self.handling.handles(obj):
            self._release(skey)
            why = (
                "the Service is being deleted"
                if objects.deleting(obj)
                else f"the Service is no longer a LoadBalancer of class {self.settings.lb_class}"
            )
            return self._fresh(key, obj, reconcile.for_release(obj, why))
        if self._behind(key, obj):
            return None  # the informer will bring what we wrote; decide on that
        request = self._request(obj)
        decision = self.allocator.decide(request)
        for evicted in decision.evicted:
            self.queue.add(evicted)
        self._handoffs += self.waiters.record(skey, request.age, decision.wait)
        if decision.outcome is Outcome.PENDING:
            self._pending[key] = decision.problem.reason if decision.problem else Reason.BAD_REQUEST
        elif decision.outcome is Outcome.UNCHANGED_NO_CONFIG and not request.current:
            self._pending[key] = Reason.NO_CONFIG
        else:
            self._pending.pop(key, None)
        self.metrics.allocations.labels(decision.outcome.value).inc()
        log.debug(
            "%s: %s %s%s",
            key,
            decision.outcome.value,
            ",".join(map(str, decision.ips)) or "-",
            f" ({decision.problem.message})" if decision.problem else "",
        )
        return self._fresh(key, obj, reconcile.for_decision(obj, decision))

    def _fresh(
        self, key: ServiceKey, obj: Obj, writes: reconcile.Writes
    ) -> tuple[ServiceKey, Obj, reconcile.Writes] | None:
        """Drop events already sent for this Service (a resync, our own status write)."""
        events = writes.events if writes.events != self._last_events.get(key) else ()
        if writes.events:
            self._last_events[key] = writes.events
        todo = dataclasses.replace(writes, events=events)
        return None if todo.empty else (key, obj, todo)

    def _write(self, key: ServiceKey, obj: Obj, writes: reconcile.Writes) -> None:
        version = self.writer.apply(obj, writes)
        if version is not None and version.isdigit() and not writes.empty:
            self._expected[key] = int(version)
        seen = self._seen_at.pop(key, None)
        if writes.ingress is not None and seen is not None:
            self.metrics.allocation_seconds.observe(time.monotonic() - seen)

    def _behind(self, key: ServiceKey, obj: Obj) -> bool:
        """Whether the cached object is older than our own last write to it
        (``reconcile.behind``); once it is not, the write is no longer waited for."""
        if reconcile.behind(self._expected.get(key), objects.resource_version(obj)):
            return True
        self._expected.pop(key, None)
        return False

    def _release(self, key: ServiceKey) -> None:
        self._expected.pop(key, None)
        self._pending.pop(key, None)
        self._last_events.pop(key, None)
        self._seen_at.pop(key, None)
        self._handoffs += self.waiters.remove(key)
        self.allocator.release(key)  # what it frees wakes its waiters (``_handle``)

    def _assignments(self) -> dict[ServiceKey, tuple[ipam.IP, ...]]:
        """What the allocator holds, for ``lbctl_allocator_address_assigned`` at scrape time."""
        with self._lock:
            return self.allocator.all_assignments()

    def _update_metrics(self) -> None:
        counts = collections.Counter(self._pending.values())
        for reason in Reason:
            self.metrics.services_pending.labels(reason.value).set(counts[reason])
        cfg = self.allocator.config
        if cfg is None:
            return
        for pool in cfg.pools:
            for family in sorted(pool.families()):
                labels = (pool.name, f"IPv{family}")
                self.metrics.addresses_total.labels(*labels).set(pool.size(family))
                self.metrics.addresses_in_use.labels(*labels).set(
                    self.allocator.in_use(pool, family)
                )
