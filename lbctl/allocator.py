"""Who holds which address: decisions for one Service at a time over plain values (pure).

The allocator never sees a Kubernetes object. A ``ServiceRequest`` says what a Service asks for
and what its status holds now; ``Allocator.decide`` returns a ``Decision`` and records it.
Rules, in order, per address family the Service wants:

1. keep the current address if it is still valid (in an admissible pool, matching what is
   asked for, not a node's address, not a ``.0`` / ``.255`` of a pool that avoids them, not
   reserved for another Service, not held incompatibly by another Service);
2. else the requested address, if it is valid;
3. else, with a sharing key, an address already held under that key that sharing allows;
4. else the first free address of the first admissible auto-assign pool (or the requested pool).

Reservations (``config.Reservation``): a Service that requests no address, and no pool other
than its reservation's, is treated as if it requested its reserved address of each family it
uses. An address reserved for one Service is never given to another, automatically, by
request or by sharing; a Service that held it before the reservation existed (a holding this
allocator recorded, or a status restored at start-up) keeps it until it lets it go, and the
named Service waits for it (``InUse``).

Address conflicts (another host on the LAN uses an address, as the speakers report it): in a
pool with ``onConflict: reallocate`` such an address is unavailable while the conflict lasts. It
is never picked automatically (first free, sharing), and a Service holding it moves to another
free address of a pool that admits it (``Cleared`` with ``ADDRESS_CONFLICT`` for the old one).
A Service that names the address (requests it, or has it reserved) keeps it: there is nothing
else it asked for, and its speaker announces it again once the other host is gone. In a pool
with ``onConflict: hold`` a conflict changes nothing here.

Who loses an address two Services may not share: an address this allocator already gave a
Service is a settled holding, so a Service that *changes* into a conflict with a settled holder
(another sharing key, a port, its traffic policy or selector) is the one refused, and the holder
that changed nothing keeps it. Age (``created``) decides only between claims the allocator has
not recorded, i.e. status addresses read at start-up or edited by hand: the older Service keeps
the address, and a younger holder is returned in ``Decision.evicted`` so its owner re-decides
it. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lbctl import config, ipam
from lbctl.config import OnConflict, Pool, PoolConfig, Reservation
from lbctl.config import ServiceKey as ServiceKey  # "namespace/name"; defined with reservations


class FamilyPolicy(enum.StrEnum):
    SINGLE = "SingleStack"
    PREFER_DUAL = "PreferDualStack"
    REQUIRE_DUAL = "RequireDualStack"


@dataclass(frozen=True, order=True)
class Port:
    protocol: str
    port: int

    def __str__(self) -> str:
        return f"{self.protocol}/{self.port}"


@dataclass(frozen=True)
class ServiceRequest:
    """What one Service asks for, read from the API object by the Kubernetes adapter."""

    key: ServiceKey
    namespace: str
    created: str = ""  # creationTimestamp, RFC 3339: sorts by age
    labels: Mapping[str, str] = field(default_factory=dict)
    families: tuple[int, ...] = (4,)  # spec.ipFamilies, in order
    family_policy: FamilyPolicy = FamilyPolicy.SINGLE
    requested_ips: tuple[ipam.IP, ...] = ()
    requested_pool: str | None = None
    sharing_key: str | None = None
    ports: frozenset[Port] = frozenset()
    cluster_traffic: bool = True  # externalTrafficPolicy: Cluster
    selector: tuple[tuple[str, str], ...] | None = None
    current: tuple[ipam.IP, ...] = ()  # status.loadBalancer.ingress
    problem: str | None = None  # the adapter could not read what the Service asks for
    # The labels of the Service's namespace (metadata.labels of the Namespace), for pools with
    # a namespaceSelector; None: not known (no Namespace seen yet).
    namespace_labels: Mapping[str, str] | None = None

    @property
    def age(self) -> tuple[str, str]:
        return (self.created, self.key)


class Outcome(enum.Enum):
    """What happened to a Service; the controller's events and metrics follow from it."""

    KEPT = "kept"  # the status holds the right addresses already
    ALLOCATED = "allocated"  # new or changed addresses
    PENDING = "pending"  # no address: see the reason
    UNCHANGED_NO_CONFIG = "unchanged-no-config"  # no good config yet: nothing is touched


class Reason(enum.Enum):
    """Why a Service is pending, or why one of its addresses was taken away."""

    NO_CONFIG = "NoConfig"
    BAD_REQUEST = "BadRequest"
    POOL_NOT_FOUND = "PoolNotFound"
    POOL_NOT_ADMITTED = "PoolNotAdmitted"
    NOT_IN_ANY_POOL = "NotInAnyPool"
    NOT_ADMITTED = "NotAdmitted"
    NOT_REQUESTED = "NotRequested"
    NODE_ADDRESS = "NodeAddress"
    BUGGY_IP = "BuggyIP"
    IN_USE = "InUse"
    EXHAUSTED = "PoolExhausted"
    NO_POOL_FOR_FAMILY = "NoPoolForFamily"
    RESERVED = "Reserved"
    ADDRESS_CONFLICT = "AddressConflict"


@dataclass(frozen=True)
class Problem:
    reason: Reason
    message: str


@dataclass(frozen=True)
class Cleared:
    """A current address the Service loses, and why (a ``ClearAssignment`` event)."""

    ip: ipam.IP
    reason: Reason
    message: str


PoolFamily = tuple[str, int]  # (pool name, 4 or 6)


@dataclass(frozen=True)
class Wait:
    """What only another Service's change can give a Service that lacks an address.

    ``addresses``: requested addresses held by Services it may not share with (``InUse``); any
    change of their holders may unblock it. ``pools``: the (pool, family) pairs that were full
    (``PoolExhausted``); an address freed there may. ``sharing_key``: with ``pools``, a holder
    under this key that changes (a port, its policy) may make its address shareable.
    Everything else a Service can lack an address for changes only with the Service itself,
    the config or the Nodes.
    """

    addresses: frozenset[ipam.IP] = frozenset()
    pools: frozenset[PoolFamily] = frozenset()
    sharing_key: str | None = None


@dataclass(frozen=True)
class Decision:
    key: ServiceKey
    outcome: Outcome
    ips: tuple[ipam.IP, ...] = ()
    pools: tuple[str, ...] = ()  # the pool of each address, same order
    problem: Problem | None = None  # why pending, or a warning while kept
    cleared: tuple[Cleared, ...] = ()
    evicted: tuple[ServiceKey, ...] = ()  # younger holders that lost an address to this one
    wait: Wait | None = None  # what another Service's change could still give it


@dataclass(frozen=True)
class _Holder:
    key: ServiceKey
    age: tuple[str, str]
    sharing_key: str | None
    ports: frozenset[Port]
    cluster_traffic: bool
    selector: tuple[tuple[str, str], ...] | None


def _holder(svc: ServiceRequest) -> _Holder:
    return _Holder(svc.key, svc.age, svc.sharing_key, svc.ports, svc.cluster_traffic, svc.selector)


def sharing_conflict(a: _Holder, b: _Holder) -> str | None:
    """Why two Services may not share an address, or None if they may."""
    if not a.sharing_key or a.sharing_key != b.sharing_key:
        return "it is held by {other} without the same sharing key"
    clash = sorted(a.ports & b.ports)
    if clash:
        return f"{{other}} uses {', '.join(map(str, clash))} on it too"
    if not (a.cluster_traffic and b.cluster_traffic) and a.selector != b.selector:
        return (
            "{other} shares it but externalTrafficPolicy is Local and the selectors differ "
            "(traffic could reach a node without endpoints)"
        )
    return None


def may_not_share(a: ServiceRequest, b: ServiceRequest) -> str | None:
    """Why Services ``a`` and ``b`` may not hold one address together, or None."""
    why = sharing_conflict(_holder(a), _holder(b))
    return why.format(other=b.key) if why else None


def wanted_families(svc: ServiceRequest) -> tuple[int, ...]:
    primary = svc.families[0] if svc.families else 4
    if svc.family_policy is FamilyPolicy.SINGLE:
        return (primary,)
    return (primary, 10 - primary)  # 4 → 6, 6 → 4


class Allocator:
    """The current assignments of every Service, and the rules to change them."""

    def __init__(
        self,
        config: PoolConfig | None = None,
        reserved: Mapping[ipam.IP, str] | None = None,
        conflicts: Mapping[ipam.IP, str] | None = None,
    ) -> None:
        self.config = config
        self.reserved: dict[ipam.IP, str] = dict(reserved or {})  # node addresses → node
        # Addresses another host on the LAN uses → who (its MAC, the node that saw it).
        self.conflicts: dict[ipam.IP, str] = dict(conflicts or {})
        self._holders: dict[ipam.IP, dict[ServiceKey, _Holder]] = {}
        self._assigned: dict[ServiceKey, tuple[ipam.IP, ...]] = {}
        self._used = {4: ipam.UsedSet(), 6: ipam.UsedSet()}
        self._touched: set[ipam.IP] = set()  # addresses whose holders changed, until taken

    # --- queries ---

    def assigned(self, key: ServiceKey) -> tuple[ipam.IP, ...]:
        return self._assigned.get(key, ())

    def holders(self, ip: ipam.IP) -> frozenset[ServiceKey]:
        return frozenset(self._holders.get(ip, {}))

    def all_assignments(self) -> dict[ServiceKey, tuple[ipam.IP, ...]]:
        return dict(self._assigned)

    def in_use(self, pool: Pool, version: int) -> int:
        used = self._used[version]
        return sum(used.count_in(r) for r in pool.ranges if r.version == version)

    def sharing_keys(self, ip: ipam.IP) -> frozenset[str]:
        """The sharing keys of the Services holding ``ip``."""
        return frozenset(h.sharing_key for h in self._holders.get(ip, {}).values() if h.sharing_key)

    def has_free(self, pool_name: str, family: int) -> bool:
        """Whether pool ``pool_name`` has an address of ``family`` that could be handed out."""
        pool = self.config.pool(pool_name) if self.config else None
        return pool is not None and self._first_free(pool, family) is not None

    def unavailable(self, ip: ipam.IP) -> str | None:
        """Who uses ``ip`` on the LAN, when a conflict there makes it unavailable (its pool
        reallocates); None otherwise."""
        who = self.conflicts.get(ip)
        if who is None or self.config is None or not self.config.reallocates(ip):
            return None
        return who

    def _first_free(self, pool: Pool, family: int) -> ipam.IP | None:
        reserved = {int(ip) for ip in self.reserved if ip.version == family}
        if self.config is not None:
            reserved |= self.config.reserved_values(family)
        if pool.on_conflict is OnConflict.REALLOCATE:
            reserved |= {int(ip) for ip in self.conflicts if ip.version == family}

        def skip(value: int) -> bool:
            return value in reserved or (
                pool.avoid_buggy_ips and ipam.is_buggy(ipam.to_ip(family, value))
            )

        for rng in pool.ranges:
            if rng.version == family:
                value = self._used[family].first_free(rng, skip)
                if value is not None:
                    return ipam.to_ip(family, value)
        return None

    def take_touched(self) -> set[ipam.IP]:
        """The addresses whose holders changed (came, went, or changed what they share with)
        since the last call: what a pending Service may have been waiting for."""
        touched, self._touched = self._touched, set()
        return touched

    # --- changes ---

    def set_config(self, config: PoolConfig) -> None:
        """New pools; the caller then re-decides every Service so invalid addresses move."""
        self.config = config

    def set_reserved(self, reserved: Mapping[ipam.IP, str]) -> None:
        self.reserved = dict(reserved)

    def set_conflicts(self, conflicts: Mapping[ipam.IP, str]) -> set[ipam.IP]:
        """The addresses other hosts on the LAN use now (address → who); returns those whose
        conflict began, ended or changed hands. The caller re-decides their holders; an
        address whose conflict ended wakes what waits for it (``take_touched``)."""
        new = dict(conflicts)
        changed = {
            ip for ip in self.conflicts.keys() | new.keys() if self.conflicts.get(ip) != new.get(ip)
        }
        self._touched.update(ip for ip in changed if ip not in new)
        self.conflicts = new
        return changed

    def release(self, key: ServiceKey) -> tuple[ipam.IP, ...]:
        ips = self._assigned.pop(key, ())
        self._touched.update(ips)
        for ip in ips:
            holders = self._holders.get(ip)
            if holders is None:
                continue
            holders.pop(key, None)
            if not holders:
                del self._holders[ip]
                self._used[ip.version].discard(int(ip))
        return ips

    def _drop(self, key: ServiceKey, ip: ipam.IP) -> None:
        """Take one address from a younger holder; its other addresses stay held."""
        self._assigned[key] = tuple(i for i in self._assigned.get(key, ()) if i != ip)
        self._touched.add(ip)
        holders = self._holders.get(ip, {})
        holders.pop(key, None)
        if not holders:
            self._holders.pop(ip, None)
            self._used[ip.version].discard(int(ip))

    def _hold(self, holder: _Holder, ips: Iterable[ipam.IP]) -> None:
        ips = tuple(ips)
        self._assigned[holder.key] = ips
        self._touched.update(ips)
        for ip in ips:
            self._holders.setdefault(ip, {})[holder.key] = holder
            self._used[ip.version].add(int(ip))

    def decide(self, svc: ServiceRequest) -> Decision:
        """Decide the addresses of ``svc`` and record them."""
        if self.config is None:
            if svc.current:
                return Decision(svc.key, Outcome.UNCHANGED_NO_CONFIG, tuple(svc.current))
            return Decision(
                svc.key,
                Outcome.PENDING,
                problem=Problem(
                    Reason.NO_CONFIG, "no valid lbctl configuration has been loaded yet"
                ),
            )
        before = {ip: self._holders[ip][svc.key] for ip in self.assigned(svc.key)}
        touched = set(self._touched)
        held = frozenset(self.release(svc.key))
        decision = _Plan(self, self.config, svc, held, settled=held).run()
        for key in decision.evicted:
            for ip in decision.ips:
                self._drop(key, ip)
                touched.add(ip)
        me = _holder(svc)
        self._hold(me, decision.ips)
        # Re-deciding a Service that keeps its addresses and what it shares with touches nothing.
        after = dict.fromkeys(decision.ips, me)
        self._touched = touched | {
            ip for ip in before.keys() | after.keys() if before.get(ip) != after.get(ip)
        }
        return decision

    def restore(self, svc: ServiceRequest) -> tuple[ipam.IP, ...]:
        """Claim the still-valid addresses in ``svc``'s status, allocating nothing new.

        At start-up every Service is restored, oldest first, before any is decided: a new
        allocation can then never take an address that a not-yet-decided Service holds.
        """
        if self.config is None:
            return ()
        self.release(svc.key)
        # A status read at start-up is a holding as settled as one this allocator made.
        plan = _Plan(self, self.config, svc, frozenset(), settled=frozenset(svc.current))
        kept = tuple(  # restoring never evicts: a conflicting holder, in any order, wins
            ip
            for ip in dict.fromkeys(svc.current)
            if plan.check_ip(ip)[1] is None and not plan.conflicting(ip)
        )
        self._hold(_holder(svc), kept)
        return kept


class _Plan:
    """One decision in progress; discarded afterwards."""

    def __init__(
        self,
        alloc: Allocator,
        config: PoolConfig,
        svc: ServiceRequest,
        held: frozenset[ipam.IP],
        *,
        settled: frozenset[ipam.IP],
    ) -> None:
        self.alloc = alloc
        self.config = config
        self.svc = svc
        self.held = held  # what the allocator had recorded for this Service before
        # Addresses this Service may keep though they are reserved for another: it held them
        # before (recorded, or restored from status at start-up). A reservation takes nothing.
        self.settled = settled
        self.me = _holder(svc)
        # Addresses this Service names (requested or reserved): a conflict does not move it.
        self.named = frozenset(svc.requested_ips) | {
            r.address for r in config.reservations_for(svc.key)
        }
        self.cleared: list[Cleared] = []
        self.wait_addresses: set[ipam.IP] = set()
        self.wait_pools: set[PoolFamily] = set()

    # --- rules about pools ---

    def admission(self, pool: Pool, *, holding: bool = False) -> str | None:
        """Why ``pool`` does not admit this Service, or None."""
        why = self.namespace_admission(pool, holding=holding)
        if why:
            return why
        if not pool.service_selector.matches(self.svc.labels):
            return f"pool {pool.name!r} admits only Services matching {pool.service_selector}"
        return None

    def namespace_admission(self, pool: Pool, *, holding: bool = False) -> str | None:
        """Why ``pool`` does not admit this Service's namespace, or None.

        While the namespace's labels are not known, a pool whose ``namespaceSelector`` only
        they could satisfy lets the Service keep an address it holds (``holding``) and gives
        it no new one: nothing is lost, or handed out, on a guess.
        """
        svc = self.svc
        labels = svc.namespace_labels
        if not pool.admits_namespace(svc.namespace, labels or {}):
            unknown = labels is None and config.namespace_refusal(pool, svc.namespace) is None
            if not unknown:
                return config.namespace_rule(pool)
            if not holding:
                return (
                    f"{config.namespace_rule(pool)}, and the labels of namespace "
                    f"{svc.namespace!r} are not known yet"
                )
        return None

    def check_ip(self, ip: ipam.IP) -> tuple[Pool | None, Problem | None]:
        """Whether this Service may hold ``ip``: its pool, or why not.

        Another holder that may not share blocks an address. If this Service held it already
        (a settled holding), this Service changed into the conflict and is refused. Only a
        claim the allocator has not recorded (a status read at start-up or edited by hand) is
        settled by age: the older keeps it, and ``conflicting`` names the holders that move.
        """
        pool = self.config.pool_of(ip)
        if pool is None:
            return None, Problem(Reason.NOT_IN_ANY_POOL, f"{ip} is in no configured pool")
        reservation = self.config.reservation_of(ip)
        if (
            reservation is not None
            and reservation.service != self.svc.key
            and ip not in self.settled
        ):
            return pool, Problem(
                Reason.RESERVED,
                f"{ip} is reserved for {reservation.service} ({reservation.label})",
            )
        why = self.admission(pool, holding=ip in self.svc.current)
        if why:
            return pool, Problem(Reason.NOT_ADMITTED, f"{ip}: {why}")
        if self.svc.requested_pool and pool.name != self.svc.requested_pool:
            return pool, Problem(
                Reason.NOT_REQUESTED,
                f"{ip} is in pool {pool.name!r}, not the requested pool "
                f"{self.svc.requested_pool!r}",
            )
        if ip in self.alloc.reserved:
            return pool, Problem(
                Reason.NODE_ADDRESS, f"{ip} is an address of node {self.alloc.reserved[ip]}"
            )
        if pool.avoid_buggy_ips and ipam.is_buggy(ip):
            return pool, Problem(
                Reason.BUGGY_IP,
                f"{ip} ends in .0 or .255 and pool {pool.name!r} has avoidBuggyIPs",
            )
        who = self.alloc.unavailable(ip)
        if who is not None and ip not in self.named:
            return pool, Problem(
                Reason.ADDRESS_CONFLICT,
                f"{ip} is in use by another host on the LAN ({who}) and pool {pool.name!r} has "
                "onConflict: reallocate",
            )
        unrecorded_claim = ip in self.svc.current and ip not in self.held
        for other in self.alloc._holders.get(ip, {}).values():
            conflict = sharing_conflict(self.me, other)
            if conflict is not None and not (
                unrecorded_claim and self.claim_rank(ip, self.me) < self.claim_rank(ip, other)
            ):
                return pool, Problem(Reason.IN_USE, f"{ip}: " + conflict.format(other=other.key))
        return pool, None

    def claim_rank(self, ip: ipam.IP, holder: _Holder) -> tuple[bool, tuple[str, str]]:
        """Who wins two unrecorded claims on ``ip``: the Service it is reserved for, then age."""
        reservation = self.config.reservation_of(ip)
        return (reservation is None or reservation.service != holder.key, holder.age)

    def conflicting(self, ip: ipam.IP) -> list[ServiceKey]:
        return [
            other.key
            for other in self.alloc._holders.get(ip, {}).values()
            if sharing_conflict(self.me, other) is not None
        ]

    # --- the decision ---

    def run(self) -> Decision:
        svc = self.svc
        if svc.problem:
            return self.keep_current_or_pending(Problem(Reason.BAD_REQUEST, svc.problem))
        families = wanted_families(svc)
        requested: dict[int, ipam.IP] = {ip.version: ip for ip in svc.requested_ips}
        if len(requested) != len(svc.requested_ips):
            return self.pending(
                Problem(Reason.BAD_REQUEST, "at most one requested address per IP family")
            )
        stray = [ip for ip in svc.requested_ips if ip.version not in families]
        if stray:
            return self.pending(
                Problem(
                    Reason.BAD_REQUEST,
                    f"requested {stray[0]} is IPv{stray[0].version}, but the Service is "
                    f"{svc.family_policy} IPv{families[0]}",
                )
            )
        if requested:
            families = tuple(f for f in families if f in requested)
            if svc.family_policy is FamilyPolicy.REQUIRE_DUAL and len(families) < 2:
                return self.pending(
                    Problem(
                        Reason.BAD_REQUEST,
                        "RequireDualStack needs a requested address of each family, or none",
                    )
                )
        if svc.requested_pool:
            pool = self.config.pool(svc.requested_pool)
            if pool is None:
                return self.pending(
                    Problem(
                        Reason.POOL_NOT_FOUND,
                        f"requested pool {svc.requested_pool!r} does not exist",
                    )
                )
            why = self.admission(pool)
            if why:
                return self.pending(Problem(Reason.POOL_NOT_ADMITTED, why))

        current: dict[int, ipam.IP] = {ip.version: ip for ip in svc.current}
        for ip in svc.current:
            if ip.version not in families or current.get(ip.version) != ip:
                self.cleared.append(
                    Cleared(
                        ip, Reason.NOT_REQUESTED, f"{ip} is not wanted by the Service's IP families"
                    )
                )
        # Explicit requests win: a Service that names addresses, or another pool, does not use
        # its reservations (they stay kept for it all the same).
        reserved: dict[int, Reservation] = (
            {}
            if svc.requested_ips
            else {
                r.address.version: r
                for r in self.config.reservations_for(svc.key)
                if svc.requested_pool in (None, r.pool)
            }
        )
        chosen: list[tuple[ipam.IP, str]] = []
        problems: list[Problem] = []
        for family in families:
            got = self.choose(
                family, current.get(family), requested.get(family), reserved.get(family)
            )
            if isinstance(got, Problem):
                problems.append(got)
            else:
                chosen.append(got)
        dual_optional = svc.family_policy is FamilyPolicy.PREFER_DUAL and not requested
        if problems and not (dual_optional and chosen):
            return self.pending(problems[0])
        return self.finish(chosen, problems[0] if problems else None)

    def choose(
        self,
        family: int,
        current: ipam.IP | None,
        requested: ipam.IP | None,
        reservation: Reservation | None = None,
    ) -> tuple[ipam.IP, str] | Problem:
        if requested is None and reservation is not None:
            requested = reservation.address
        if current is not None:
            pool, problem = self.check_ip(current)
            if problem is None and requested not in (None, current):
                what = (
                    f"its reserved {requested} ({reservation.label})"
                    if reservation is not None
                    else f"the requested {requested}"
                )
                problem = Problem(Reason.NOT_REQUESTED, f"{current} is not {what}")
            if problem is None and pool is not None:
                return current, pool.name
            assert problem is not None
            self.cleared.append(Cleared(current, problem.reason, problem.message))
        if requested is not None:
            pool, problem = self.check_ip(requested)
            if problem:
                if problem.reason is Reason.IN_USE:
                    self.wait_addresses.add(requested)
                if reservation is None:
                    return problem
                why = problem.message.removeprefix(f"{requested}: ")
                return Problem(
                    problem.reason, f"reserved address {requested} ({reservation.label}): {why}"
                )
            assert pool is not None
            return requested, pool.name
        shared = self.shared_address(family)
        if shared:
            return shared
        return self.first_free(family)

    def shared_address(self, family: int) -> tuple[ipam.IP, str] | None:
        if not self.svc.sharing_key:
            return None
        candidates = sorted(
            (
                ip
                for ip, holders in self.alloc._holders.items()
                if ip.version == family
                and any(h.sharing_key == self.svc.sharing_key for h in holders.values())
            ),
            key=int,
        )
        for ip in candidates:
            pool, problem = self.check_ip(ip)
            if (
                problem is None
                and not self.conflicting(ip)
                and pool is not None
                and (pool.auto_assign or self.svc.requested_pool == pool.name)
            ):
                return ip, pool.name
        return None

    def candidate_pools(self, family: int) -> list[Pool]:
        if self.svc.requested_pool:
            pool = self.config.pool(self.svc.requested_pool)
            return [pool] if pool and family in pool.families() else []
        return [
            p
            for p in self.config.pools
            if p.auto_assign and family in p.families() and self.admission(p) is None
        ]

    def first_free(self, family: int) -> tuple[ipam.IP, str] | Problem:
        pools = self.candidate_pools(family)
        if not pools and not self.svc.requested_pool:
            refusals = [why for p in self.config.pools if (why := self.namespace_admission(p))]
            if refusals and len(refusals) == len(self.config.pools):
                return Problem(
                    Reason.NOT_ADMITTED,
                    f"no pool admits namespace {self.svc.namespace!r}: {'; '.join(refusals)}",
                )
        if not pools:
            where = (
                f"pool {self.svc.requested_pool!r} has"
                if self.svc.requested_pool
                else "no auto-assign pool that admits this Service has"
            )
            return Problem(Reason.NO_POOL_FOR_FAMILY, f"{where} no IPv{family} addresses")
        for pool in pools:
            ip = self.alloc._first_free(pool, family)
            if ip is not None:
                return ip, pool.name
        self.wait_pools.update((p.name, family) for p in pools)
        names = ", ".join(p.name for p in pools)
        return Problem(Reason.EXHAUSTED, f"no free IPv{family} address in pool(s) {names}")

    # --- endings ---

    def wait(self) -> Wait | None:
        if not (self.wait_addresses or self.wait_pools):
            return None
        return Wait(
            frozenset(self.wait_addresses),
            frozenset(self.wait_pools),
            self.svc.sharing_key if self.wait_pools else None,
        )

    def finish(self, chosen: list[tuple[ipam.IP, str]], problem: Problem | None) -> Decision:
        evicted = list(dict.fromkeys(k for ip, _ in chosen for k in self.conflicting(ip)))
        ips = tuple(ip for ip, _ in chosen)
        outcome = Outcome.KEPT if ips == tuple(self.svc.current) else Outcome.ALLOCATED
        return Decision(
            self.svc.key,
            outcome,
            ips,
            tuple(p for _, p in chosen),
            problem,
            tuple(self.cleared),
            tuple(evicted),
            self.wait() if problem else None,
        )

    def pending(self, problem: Problem) -> Decision:
        for ip in self.svc.current:
            if all(c.ip != ip for c in self.cleared):
                self.cleared.append(Cleared(ip, problem.reason, problem.message))
        return Decision(
            self.svc.key,
            Outcome.PENDING,
            problem=problem,
            cleared=tuple(self.cleared),
            wait=self.wait(),
        )

    def keep_current_or_pending(self, problem: Problem) -> Decision:
        """A malformed request keeps still-valid current addresses: a typo loses nothing."""
        kept: list[tuple[ipam.IP, str]] = []
        for ip in dict.fromkeys(self.svc.current):
            pool, why = self.check_ip(ip)
            if why is None and pool is not None:
                kept.append((ip, pool.name))
            else:
                self.cleared.append(
                    Cleared(ip, why.reason, why.message)
                    if why
                    else Cleared(ip, Reason.NOT_IN_ANY_POOL, f"{ip} is in no configured pool")
                )
        if not kept:
            return self.pending(problem)
        return self.finish(kept, problem)
