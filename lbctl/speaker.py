"""The speaker process: leases, informers, election, responder and announcements, wired (I/O).

Every speaker computes the same owner for every address from the same inputs (``election``);
the owner answers ARP/NDP for it on the right interfaces (``announce.responder``) and sends
gratuitous rounds after taking over and a periodic refresh (``garp``). Nothing is announced
before the caches have synced, without a valid config, while our own Lease is not fresh, or
before the start-up rule allows (``election.settling``: a moment after joining, and no peer
still starting).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable

from kubernetes import client
from prometheus_client import CollectorRegistry, Counter
from pydantic import Field

from lbctl import (
    announcing,
    config,
    conflicts,
    election,
    ipam,
    leases,
    liveness,
    objects,
    ownership,
    packets,
    reconcile,
)
from lbctl.announce import netlink
from lbctl.announce.heartbeat import Advertiser
from lbctl.announce.responder import Responder
from lbctl.garp import GarpSchedule
from lbctl.interfaces import Link, advertised_link_lost, links_for, serves_lan
from lbctl.kube import informer, speakers
from lbctl.kube.informer import Informer
from lbctl.kube.writer import ServiceWriter
from lbctl.metrics import Families, serve
from lbctl.settings import PoolSettings

log = logging.getLogger(__name__)


class SpeakerSettings(PoolSettings):
    node_name: str = Field(default="", description="this node's name (from the downward API)")
    # The Lease catches slow failures and API cut-offs; the LAN advertisements catch the rest
    # within a second. Renewing like the kubelet's node Lease: 0.1 writes/s per node.
    lease_duration: int = Field(default=40, ge=1, description="speaker Lease duration, seconds")
    renew_period: float = Field(default=10.0, gt=0, description="speaker Lease renewal, seconds")
    advertise_interval: float = Field(
        default=liveness.DEFAULT_INTERVAL,
        ge=0,
        description="seconds between advertisements on the LAN (a peer silent for 3.5 of them "
        "is out of the election); 0 turns them off",
    )
    advertise_hold: float = Field(
        default=liveness.DEFAULT_HOLD,
        ge=0,
        description="seconds a peer back after silence must be heard before it counts again",
    )
    ignore_exclude_label: bool = Field(
        default=False, description=f"announce from nodes labelled {election.EXCLUDE_LABEL}"
    )
    pod_name: str = Field(default="", description="this speaker's Pod (downward API)")
    pod_uid: str = Field(
        default="", description="its uid: the Pod owns the speaker's Lease, which goes with it"
    )
    metrics_address: str = Field(default="0.0.0.0", description="metrics/probes address")
    metrics_port: int = Field(
        default=7473, ge=0, le=65535, description="metrics/probes port; 0 turns them off"
    )


def _mac(mac: bytes | None) -> str:
    return packets.mac_text(mac) if mac else "unknown"


class SpeakerMetrics:
    def __init__(self, node: str = "") -> None:
        self.registry = CollectorRegistry()
        family = Families(self.registry, subsystem="speaker")

        def per_address_family(name: str, documentation: str) -> Counter:
            return family.counter(name, documentation, "family")  # IPv4 (ARP) or IPv6 (NDP)

        self.info = family.gauge(
            "info", "Always 1; the node label names this speaker's node (join on instance)", "node"
        )
        if node:
            self.info.labels(node).set(1)
        self.announced = family.gauge(
            "announced", "1 for each address this node announces", "service", "ip"
        )
        self.requests = per_address_family(
            "requests_received", "ARP requests / Neighbor Solicitations received"
        )
        self.replies = per_address_family("replies_sent", "ARP / NDP replies sent")
        self.gratuitous = per_address_family(
            "gratuitous_sent", "Gratuitous ARP / unsolicited NA rounds sent"
        )
        self.probes = per_address_family(
            "probes_sent", "ARP probes / DAD Neighbor Solicitations sent before announcing"
        )
        self.dropped = family.counter("frames_dropped", "Frames not answered, by reason", "reason")
        self.ownership_changes = family.counter(
            "ownership_changes", "Addresses this node took or gave up", "change"
        )
        self.renew_failures = family.counter(
            "lease_renewal_failures", "Failed renewals of this node's Lease"
        )
        self.peers_out = family.gauge(
            "peers_out",
            "Speakers with a live Lease that the LAN advertisements leave out of the election",
        )
        self.live_speakers = family.gauge("live_speakers", "Speakers with a live Lease")
        self.advertisements = family.counter(
            "advertisements", "Speaker advertisements on the LAN, sent and received", "direction"
        )
        self.conflicts = family.gauge(
            "address_conflicts",
            "1 for each address this node owns but another host on the LAN uses",
            "ip",
        )

    def count(self, counter: str, label: str) -> None:
        {
            "requests": self.requests,
            "replies": self.replies,
            "gratuitous": self.gratuitous,
            "dropped": self.dropped,
            "advertisements": self.advertisements,
            "probes": self.probes,
        }[counter].labels(label).inc()


class Speaker:
    def __init__(
        self,
        api: client.ApiClient,
        settings: SpeakerSettings,
        metrics: SpeakerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock``: monotonic seconds, for every decision the loop makes and for its Leases
        (tests give one)."""
        if not settings.node_name:
            raise ValueError("the speaker needs its node name: --node-name or LBCTL_NODE_NAME")
        self.api, self.settings = api, settings
        self.me = settings.node_name
        self._clock = clock
        self.metrics = metrics or SpeakerMetrics(settings.node_name)
        self.handling = objects.Handling(settings.lb_class, settings.class_less)
        core = client.CoreV1Api(api)
        self.services = Informer("services", core.list_service_for_all_namespaces, self._poke)
        self.slices = Informer(
            "endpointslices",
            client.DiscoveryV1Api(api).list_endpoint_slice_for_all_namespaces,
            self._poke,
        )
        self.nodes = Informer("nodes", core.list_node, self._poke)
        self.leases = speakers.informer(api, settings.namespace, self._on_lease)
        self.configmaps = informer.config_map(
            api, settings.namespace, settings.config_map, self._poke
        )
        self.informers = [self.services, self.slices, self.nodes, self.leases, self.configmaps]
        # One clock for the loop and for the Leases it judges by (ours and our peers').
        self.liveness = leases.Liveness(clock)
        self.own = speakers.OwnLease(
            client.CoordinationV1Api(api),
            namespace=settings.namespace,
            node=self.me,
            timings=speakers.LeaseTimings(settings.lease_duration, settings.renew_period),
            clocks=leases.Clocks(monotonic=clock),
            on_failure=self.metrics.renew_failures.inc,
            pod=(
                speakers.PodRef(settings.pod_name, settings.pod_uid)
                if settings.pod_name and settings.pod_uid
                else None
            ),
        )
        self.responder = Responder(count=self.metrics.count, on_claim=self._on_claim)
        # Address conflicts (RFC 5227): claims come from the responder's thread, the loop
        # decides. ``watched``: the addresses we own, announced or not (probing, conflict).
        self.guard = conflicts.Guard()
        self.watched: dict[ipam.IP, tuple[Link, ...]] = {}
        self._watching: dict[ipam.IP, tuple[Link, ...]] = {}  # watched, and conflicts kept
        self._conflict_series: set[str] = set()  # the ip labels of lbctl_speaker_address_conflicts
        self._claims: queue.SimpleQueue[tuple[packets.Claim, float]] = queue.SimpleQueue()
        self.peers = liveness.PeerWatch(
            self.me, interval=settings.advertise_interval or 1.0, hold=settings.advertise_hold
        )
        self._peers_lock = threading.Lock()  # the advertiser thread writes, the loop reads
        self.cluster_macs: dict[str, set[bytes]] = {}  # node → MACs its advertisements came from
        self._advertised: frozenset[Link] = frozenset()  # the links we advertise on
        self.advertiser = (
            Advertiser(
                self.me,
                interval=settings.advertise_interval,
                on_heard=self._on_heard,
                state=self._advertised_state,
                sent=self._sent,
                alive=self.responder.alive,
                count=self.metrics.count,
            )
            if settings.advertise_interval > 0
            else None
        )
        self.writer = ServiceWriter(
            api, may_write=lambda: True, component="lbctl-speaker", host=self.me
        )
        self.links: list[Link] = []
        self._links_known = False  # netlink's first dump has arrived
        self._no_link_since: float | None = None
        # Our Lease says "starting" until caches and links are known and a link can announce:
        # others see us coming, but hand us no address we cannot announce yet.
        self.own.starting = True
        self._settling: str | None = None  # why we do not announce yet, as last logged
        self._wake = threading.Event()
        self._config = config.LastGood()
        self.owned: dict[ipam.IP, tuple[Link, ...]] = {}
        self._needs: dict[ipam.IP, election.AddressNeeds] = {}
        self._owners: dict[ipam.IP, str | None] = {}
        self._labelled: dict[ipam.IP, tuple[str, ...]] = {}  # announced{service, ip} series
        self.schedule: GarpSchedule[ipam.IP] = GarpSchedule(config.Garp())
        # Events go out from their own thread: an API server slow or out of reach must never
        # hold up taking over, giving up or the gratuitous rounds.
        self._events: queue.Queue[tuple[informer.Obj, reconcile.Event]] = queue.Queue(maxsize=1000)

    # --- inputs ---

    def _poke(self, kind: str, obj: informer.Obj) -> None:
        self._wake.set()

    def _on_lease(self, kind: str, obj: informer.Obj) -> None:
        self.liveness.observe(kind, obj)
        if kind != "DELETED":
            self.own.echo(obj)
        self._wake.set()

    def _on_heard(self, beat: packets.Heartbeat, mac: bytes, now: float) -> None:
        with self._peers_lock:
            before = self.peers.out(now)
            self.peers.heard(
                beat.node,
                incarnation=beat.incarnation,
                interval=beat.interval_ms / 1000,
                accused=beat.accused,
                yielding=beat.yielding,
                now=now,
            )
            self.cluster_macs.setdefault(beat.node, set()).add(mac)
            changed = self.peers.out(now) != before
        if changed:
            self._wake.set()

    def _advertised_state(self, now: float) -> tuple[frozenset[str], bool]:
        with self._peers_lock:
            return self.peers.accusations(now), self.peers.yielding(now)

    def _sent(self, now: float) -> None:
        with self._peers_lock:
            held = self.me in self.peers.out(now)
            self.peers.sent(now)
            changed = (self.me in self.peers.out(now)) != held
        if changed:
            self._wake.set()

    def _on_claim(self, claim: packets.Claim, link: Link) -> None:
        self._claims.put((claim, self._clock()))
        self._wake.set()

    def _cluster_macs(self) -> set[bytes]:
        with self._peers_lock:
            macs = {mac for found in self.cluster_macs.values() for mac in found}
        return macs | {packets.mac_bytes(link.mac) for link in self.links if link.mac}

    def _on_links(self, links: list[Link], went_down: frozenset[int] = frozenset()) -> None:
        if log.isEnabledFor(logging.DEBUG):  # the join runs on every link notification
            log.debug(
                "links: %s; seen down since the last read: %s",
                ", ".join(f"{link.name}{'' if link.up else ' (down)'}" for link in links),
                sorted(went_down),
            )
        if advertised_link_lost(self._advertised, self.links, links, went_down):
            # Our peers may miss our advertisements now: yield, and tell them when we can.
            with self._peers_lock:
                self.peers.link_lost(self._clock())
        self.links, self._links_known = links, True
        self._wake.set()

    def _load_config(self) -> config.PoolConfig | None:
        obj = self.configmaps.get(f"{self.settings.namespace}/{self.settings.config_map}")
        new = None if obj is None else self._config.update(objects.configmap_data(obj))
        if isinstance(new, config.ConfigError):
            log.error("invalid config, keeping the last good one: %s", new)
        elif new is not None:
            self.schedule.garp = new.announce.garp
            self.guard.schedule = new.announce.conflicts
        return self._config.config

    def ready(self) -> bool:
        return all(i.synced.is_set() for i in self.informers)

    # --- the loop ---

    def run(self, stop: threading.Event) -> None:
        server = serve(self.metrics.registry, self.settings, ready=self.ready)
        targets: list[tuple[str, Callable[[threading.Event], object]]] = [
            (i.name, i.run) for i in self.informers
        ]
        self.responder.start(stop)
        targets += [
            ("lease", self.own.run),
            ("netlink", lambda s: netlink.follow(self._on_links, s)),
            ("events", self._send_events),
        ]
        if self.advertiser is not None:
            targets.append(("advertiser", self.advertiser.run))
        for name, target in targets:
            threading.Thread(target=target, args=(stop,), name=name, daemon=True).start()
        try:
            while not stop.is_set():
                self._wake.wait(self._sleep())
                self._wake.clear()
                if stop.is_set():
                    break
                try:
                    self.recompute()
                    self.send_due()
                except Exception:  # keep answering what we own; the next pass retries
                    log.exception("recomputing announcements")
        finally:
            self.shutdown()
            for inf in self.informers:
                inf.stop()
            if server:
                server.shutdown()

    def _send_events(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                obj, event = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            self.writer.event(obj, event)

    def shutdown(self) -> None:
        """Stop answering at once, then give our Lease back so others take over now."""
        self.responder.set_owned({})
        for ip in list(self.owned):
            self._gave_up(ip)
        self.owned = {}
        self.own.release()
        self.responder.close()

    def _sleep(self) -> float:
        waits = [0.5]
        now = self._clock()
        if (at := self.schedule.next_time()) is not None:
            waits.append(at - now)
        if (left := self.liveness.next_expiry()) is not None:
            waits.append(left + 0.01)
        if (probe_at := self.guard.next_change()) is not None:
            waits.append(probe_at - now)
        with self._peers_lock:
            if (change := self.peers.next_change(now)) is not None:
                waits.append(change - now + 0.005)
        if self._settling:  # the start-up rule's next step
            waits += announcing.settle_wakeups(
                self.own.joined_for(), self.settings.renew_period, self.settings.lease_duration
            )
        return max(0.0, min(waits))

    def desired(self) -> dict[ipam.IP, tuple[Link, ...]]:
        """The addresses this node must announce now, each with its links."""
        cfg = self._load_config()
        if cfg is not None and self.ready() and self._links_known:
            self._follow_lan(cfg)
        why = announcing.silence(
            has_config=cfg is not None, synced=self.ready(), lease_fresh=self.own.fresh()
        )
        if cfg is None or why is not None:
            if self.owned:
                log.warning("announcing nothing: %s", why)
            return {}
        settling = announcing.settle(
            self.own.joined_for(),
            self.liveness.starting() - {self.me},
            self.settings.renew_period,
            self.settings.lease_duration,
        )
        if settling != self._settling:
            if settling:
                log.info("announcing nothing yet: %s", settling)
            else:
                log.info("start-up done: announcing")
            self._settling = settling
        if settling:
            return {}
        # We know first-hand that we are alive (our Lease is fresh), even if our watch of
        # the Leases lags behind, e.g. while TCP retransmits after a link flap.
        live = self.liveness.live() | {self.me}
        self.metrics.live_speakers.set(len(live))
        # The LAN's word can only take speakers out, never put one in (liveness).
        with self._peers_lock:
            self.peers.keep_only(live | self.liveness.starting())
            out = self.peers.out(self._clock())
        self.metrics.peers_out.set(len((out & live) - {self.me}))
        self.own.publish(leases.UNHEARD, ",".join(sorted(out & live)))
        if self.me in out:
            if self.owned:
                log.warning("a peer does not hear us, or we were silent: announcing nothing")
            return {}
        live -= out
        view = ownership.compute(
            cfg,
            service_objs=self.services.items(),
            node_objs=self.nodes.items(),
            slice_objs=self.slices.items(),
            live=live,
            starting=self.liveness.starting(),
            handling=self.handling,
            honour_exclude_label=not self.settings.ignore_exclude_label,
        )
        self._needs = view.needs
        owners = self._owners = view.owners
        if self.advertiser is not None:
            self._advertised = frozenset(
                link
                for r, how in self._wanted(cfg)
                for link in links_for(r.ip(r.first), self.links, how)
            )
            self.advertiser.set_links(self._advertised)
        labels = self._labels()
        announce: dict[ipam.IP, tuple[Link, ...]] = {}
        for ip, node in owners.items():
            how = cfg.announcing(ip, labels)
            if node == self.me and isinstance(how, config.Announcing):
                announce[ip] = tuple(links_for(ip, self.links, how))
        return announce

    def _probe_links(self, cfg: config.PoolConfig | None, ip: ipam.IP) -> tuple[Link, ...]:
        """Where to keep probing a conflicted address we no longer own: the links its pool's
        policy would announce it on from here, else the automatic choice."""
        how = cfg.announcing(ip, self._labels()) if cfg is not None else None
        policy = how if isinstance(how, config.Announcing) else config.Announcing()
        return tuple(links_for(ip, self.links, policy))

    def _labels(self) -> dict[str, str]:
        """Our Node's labels, as the Node informer holds them (a pool's nodeSelector)."""
        node = self.nodes.get(self.me)
        return objects.labels_of(node) if node is not None else {}

    def _wanted(self, cfg: config.PoolConfig) -> list[tuple[ipam.Range, config.Announcing]]:
        """The pool ranges this node may announce, each with how (its pool's policy).

        A node that may announce no pool answers for nothing, but still joins the election and
        advertises on the LAN as it always did, on the global section's interfaces: its peers
        then keep hearing it, and it is ready the moment a policy lets it in."""
        labels = self._labels()
        wanted = [
            (r, how)
            for pool in cfg.pools
            if isinstance(how := pool.announcing(labels, cfg.announce), config.Announcing)
            for r in pool.ranges
        ]
        if wanted:
            return wanted
        named = cfg.announce.interfaces
        default = config.Announcing(named, automatic=not named)
        return [(r, default) for pool in cfg.pools for r in pool.ranges]

    def _follow_lan(self, cfg: config.PoolConfig) -> None:
        """Out of the election while no link can carry our announcements; back when one can.

        A gap shorter than one renew period (a carrier blip, a route replaced) moves nothing
        (``announcing.follow_lan``)."""
        follow = announcing.follow_lan(
            serves=serves_lan(self._wanted(cfg), self.links),
            now=self._clock(),
            no_link_since=self._no_link_since,
            withdrawn=self.own.withdrawn,
            starting=self.own.starting,
            grace=self.settings.renew_period,
        )
        self._no_link_since = follow.no_link_since
        if follow.step is announcing.LanStep.JOIN:
            log.info("a link to announce on is up: joining the election")
            self.own.join()
        elif follow.step is announcing.LanStep.WITHDRAW:
            log.warning("no link up to announce any pool's addresses on: withdrawing")
            self.own.withdraw()

    def recompute(self) -> None:
        before = self._owners
        desired = self.desired()
        now = self._clock()
        handover = announcing.handovers(desired, self.watched, before, self.me)
        # A conflicted address of a reallocate pool stays watched after its Service moved away:
        # our Lease reports it, so the controller gives it to no one while the host is there.
        cfg = self._config.config
        keep = cfg.reallocates if cfg is not None else (lambda ip: False)
        actions = self.guard.own(desired, now, handover=handover, keep=keep)
        cluster = self._cluster_macs()
        while not self._claims.empty():
            claim, at = self._claims.get()
            actions += self.guard.claim(
                claim.ip, claim.mac, probe=claim.probe, cluster=cluster, now=at
            )
        self.watched = desired
        kept = self.guard.kept()
        watching = desired | {ip: self._probe_links(cfg, ip) for ip in kept if ip not in desired}
        cleared = self.guard.announcing()  # not probing, not conflicted
        answer = {ip: links for ip, links in desired.items() if ip in cleared}
        if answer != self.owned or actions or watching != self._watching:
            self.responder.set_owned(answer, watching)
            self._watching = watching
        for action in actions:
            self._act(action, watching, owned=action.ip in desired)
        self._report_conflicts(desired)
        if answer == self.owned:
            return
        change = announcing.diff(self.owned, answer)
        for ip in change.gave_up:
            owner = self._owners.get(ip)
            log.info("%s now belongs to %s", ip, owner or "nobody here")
            self._gave_up(ip)
        for took in change.took:
            self._took(took.ip, took.links, now, new=took.new)
        self.owned = answer

    def _took(self, ip: ipam.IP, links: tuple[Link, ...], now: float, *, new: bool) -> None:
        self.schedule.take(ip, now)
        need = self._needs.get(ip)
        names = need.services if need else ()
        where = ", ".join(link.name for link in links) or "no interface"
        log.info("announcing %s (%s) on %s", ip, ", ".join(names), where)
        if new:
            self.metrics.ownership_changes.labels("took").inc()
        for svc in self._labelled.pop(ip, ()):
            self.metrics.announced.remove(svc, str(ip))
        self._labelled[ip] = names
        for svc in names:
            self.metrics.announced.labels(svc, str(ip)).set(1)
            obj = self.services.get(svc)
            if obj is not None:
                event = reconcile.Event(
                    reconcile.EventType.NORMAL,
                    "Announcing",
                    f"announcing {ip} from node {self.me} on interface {where}",
                )
                with contextlib.suppress(queue.Full):  # best effort: drop, never wait
                    self._events.put_nowait((obj, event))

    def _gave_up(self, ip: ipam.IP) -> None:
        self.schedule.drop(ip)
        self.metrics.ownership_changes.labels("gave-up").inc()
        log.info("no longer announcing %s", ip)
        for svc in self._labelled.pop(ip, ()):
            self.metrics.announced.remove(svc, str(ip))

    def _act(
        self,
        action: conflicts.Action,
        links: dict[ipam.IP, tuple[Link, ...]],
        *,
        owned: bool = True,
    ) -> None:
        ip, where = action.ip, links.get(action.ip, ())
        if action.do is conflicts.Do.PROBE:
            for link in where:
                self.responder.probe(ip, link)
        elif action.do is conflicts.Do.DEFEND:
            log.warning("%s claimed by %s: defending it once", ip, _mac(action.mac))
            for link in where:
                self.responder.announce(ip, link)
        elif action.do is conflicts.Do.STAND_DOWN:
            log.warning(
                "%s is in use by another host (%s): not announcing it", ip, _mac(action.mac)
            )
            self._tell(ip, reconcile.EventType.WARNING, "AddressConflict",
                       f"{ip} is in use by another host on the LAN (MAC {_mac(action.mac)}): "
                       f"node {self.me} does not announce it until that host is gone")  # fmt: skip
        elif action.do is conflicts.Do.RESOLVED and not owned:
            log.info("%s: the other host (%s) is gone: free again", ip, _mac(action.mac))
        elif action.do is conflicts.Do.RESOLVED:
            log.info("%s: the other host (%s) is gone: announcing it", ip, _mac(action.mac))
            self._tell(ip, reconcile.EventType.NORMAL, "AddressConflictResolved",
                       f"{ip} is no longer in use by {_mac(action.mac)}: announcing it "
                       f"from node {self.me}")  # fmt: skip

    def _report_conflicts(self, owned: dict[ipam.IP, tuple[Link, ...]]) -> None:
        """Our Lease's ``lbctl.io/conflicts``: every conflict we watch, owned or kept (written
        only when it changed; an address we stopped watching leaves it too). The metric
        ``lbctl_speaker_address_conflicts``: the owned ones. One kept only after its Service
        moved away (reallocate) is not counted: nothing is down for it."""
        found = self.guard.conflicts()
        self.own.publish(
            leases.CONFLICTS,
            ",".join(f"{a}={_mac(m)}" for a, m in sorted(found.items(), key=lambda kv: str(kv[0]))),
        )
        now = {str(ip) for ip in found if ip in owned}
        for ip in self._conflict_series - now:
            self.metrics.conflicts.remove(ip)
        for ip in now - self._conflict_series:
            self.metrics.conflicts.labels(ip).set(1)
        self._conflict_series = now

    def _tell(self, ip: ipam.IP, kind: reconcile.EventType, reason: str, message: str) -> None:
        need = self._needs.get(ip)
        for svc in need.services if need else ():
            obj = self.services.get(svc)
            if obj is not None:
                with contextlib.suppress(queue.Full):  # best effort: drop, never wait
                    self._events.put_nowait((obj, reconcile.Event(kind, reason, message)))

    def send_due(self) -> None:
        for ip in self.schedule.due(self._clock()):
            for link in self.owned.get(ip, ()):
                self.responder.announce(ip, link)
