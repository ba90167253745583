"""The pool ConfigMap: raw YAML → strict raw model → checked ``PoolConfig`` (pure).

Invariants of a ``PoolConfig``: pool names are unique DNS-1123 labels; every address entry is a
valid unicast range of one family; no two ranges overlap, within or between pools; selectors
and interface names are well formed; every reservation is one address inside a pool (not a
``.0`` / ``.255`` its pool avoids), reserved once, for a ``namespace/name`` that has at most one
reservation per IP family. Any violation is a ``ConfigError`` whose lines name the field path
(``pools[1].addresses[0]: ...``).

Two questions the controller and the speakers ask are answered here, from plain values:
``Pool.admits_namespace`` (may Services of this namespace get the pool) and
``PoolConfig.announcing`` (may this node announce this address, and on which interfaces).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Annotated, Literal, NewType

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from lbctl import conflicts, ipam, strict_yaml
from lbctl.selectors import AnyOf, Operator, Selector

# A Service by "namespace/name": how reservations name it, and the allocator keys Services.
ServiceKey = NewType("ServiceKey", str)

CONFIG_KEY = "config.yaml"
MAX_CONFIG_BYTES = 1 << 20  # a ConfigMap holds at most 1 MiB anyway
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")  # a Service's name
INTERFACE_NAME = re.compile(r"^[^/\s:\x00-\x1f\x7f]{1,15}$")


class InvalidInput(ValueError):
    """A user's document is invalid; ``lines`` say why, one problem each, in input order
    (the CLI prints each after the file name)."""

    def __init__(self, lines: Sequence[str]) -> None:
        self.lines = list(lines)
        super().__init__("; ".join(self.lines))


class ConfigError(InvalidInput):
    """The config is invalid; ``problems`` are ``(path, message)`` pairs, in input order."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__([f"{path}: {msg}" if path else msg for path, msg in problems])


# --- raw layer: mirrors the YAML, strict -------------------------------------------------

# Keys that take one of several shapes (a selector or a list of them; announce: false, one rule
# or a list of rules) are tagged unions: the shape picks the model, and the tag (in <>) is left
# out of error paths.
_SHAPE_MESSAGE = "must be a label selector (a mapping) or a list of them"


def _shape(value: object) -> str | None:
    if isinstance(value, bool):
        return "<flag>"
    if isinstance(value, dict):
        return "<one>"
    if isinstance(value, list):
        return "<many>"
    return None


class _Raw(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RawExpression(_Raw):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = []


class RawSelector(_Raw):
    matchLabels: dict[str, str] = {}
    matchExpressions: list[RawExpression] = []


RawSelectors = Annotated[
    Annotated[RawSelector, Tag("<one>")] | Annotated[list[RawSelector], Tag("<many>")],
    Discriminator(_shape, custom_error_type="selector_shape", custom_error_message=_SHAPE_MESSAGE),
]


class RawAnnounceRule(_Raw):
    """One way a pool's addresses are announced: from these nodes, on these interfaces."""

    nodeSelector: RawSelectors = RawSelector()
    interfaces: list[str] = []


RawPoolAnnounce = Annotated[
    Annotated[bool, Tag("<flag>")]
    | Annotated[RawAnnounceRule, Tag("<one>")]
    | Annotated[list[RawAnnounceRule], Tag("<many>")],
    Discriminator(
        _shape,
        custom_error_type="announce_shape",
        custom_error_message="must be false, true, a rule (nodeSelector, interfaces) or a list "
        "of rules",
    ),
]


class RawPool(_Raw):
    name: str
    addresses: list[str] = Field(min_length=1)
    autoAssign: bool = True
    avoidBuggyIPs: bool = False
    namespaces: list[str] = []
    namespaceSelector: RawSelectors | None = None
    serviceSelector: RawSelectors = RawSelector()
    priority: int = 0
    announce: RawPoolAnnounce = True
    onConflict: Literal["hold", "reallocate"] = "hold"


class RawGarp(_Raw):
    rounds: int = Field(default=5, ge=1, le=20)
    # Linux ignores a second ARP update within 1 s (locktime): rounds must be further apart.
    intervalMs: int = Field(default=1100, gt=1000, le=60_000)
    refreshSeconds: int = Field(default=60, ge=0, le=3600)


class RawConflicts(_Raw):
    probes: int = Field(default=2, ge=0, le=10)  # 0: no probing before announcing
    intervalMs: int = Field(default=50, ge=10, le=2000)
    waitMs: int = Field(default=100, ge=10, le=5000)
    recheckSeconds: int = Field(default=5, ge=1, le=3600)


class RawAnnounce(_Raw):
    interfaces: list[str] = []
    nodeSelector: RawSelector = RawSelector()
    garp: RawGarp = RawGarp()
    conflicts: RawConflicts = RawConflicts()


class RawReservation(_Raw):
    address: str
    service: str  # namespace/name


class RawConfig(_Raw):
    pools: list[RawPool]
    announce: RawAnnounce = RawAnnounce()
    reservations: list[RawReservation] = []


# --- checked layer -----------------------------------------------------------------------

# The API server sets this label on every namespace (Kubernetes 1.21 and later), so a
# namespaceSelector can name namespaces, e.g. "every namespace but these" with NotIn.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class AnnounceRule:
    """Nodes matching ``node_selector`` may announce, on ``interfaces`` (empty: the automatic
    choice, the interface whose subnet holds the address, else that of the default route)."""

    node_selector: AnyOf = field(default_factory=AnyOf)
    interfaces: tuple[str, ...] = ()


@dataclass(frozen=True)
class Announcing:
    """How one node announces one address: on the named interfaces, and also on the automatic
    choice when ``automatic`` (a matching rule named no interface)."""

    interfaces: tuple[str, ...] = ()
    automatic: bool = True


class OnConflict(enum.StrEnum):
    """What the controller does when another host on the LAN uses one of a pool's addresses
    (a speaker reports it in its Lease, ``lbctl.io/conflicts``)."""

    HOLD = "hold"  # the Service keeps the address; it is announced again once the host leaves
    REALLOCATE = "reallocate"  # the Service moves to another free address; nobody gets it meanwhile


class Silence(enum.Enum):
    """Why a node does not announce an address (a closed set, for ``lbctl status``)."""

    NOT_IN_POOL = "the address is in no pool"
    NOT_ANNOUNCED = "its pool is not announced (announce: false)"
    NODE_SELECTOR = "the node matches no nodeSelector of the pool's announce policy"


@dataclass(frozen=True)
class Pool:
    name: str
    ranges: tuple[ipam.Range, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    namespaces: frozenset[str] = frozenset()  # with namespace_selector: either admits
    service_selector: AnyOf = field(default_factory=AnyOf)
    priority: int = 0
    namespace_selector: AnyOf | None = None  # None: not used
    # None: the global announce section; (): not announced at all; else any matching rule.
    announce: tuple[AnnounceRule, ...] | None = None
    on_conflict: OnConflict = OnConflict.HOLD

    def contains(self, ip: ipam.IP) -> bool:
        return any(ip in r for r in self.ranges)

    def families(self) -> frozenset[int]:
        return frozenset(r.version for r in self.ranges)

    def size(self, version: int) -> int:
        return sum(r.size for r in self.ranges if r.version == version)

    def admits_namespace(self, name: str, labels: Mapping[str, str]) -> bool:
        """Whether Services in namespace ``name`` (with ``labels``) may get this pool's addresses.

        Listed in ``namespaces`` or matching ``namespaceSelector``; every namespace when neither
        is set. The selector also sees the name as ``kubernetes.io/metadata.name``.
        """
        if not self.namespaces and self.namespace_selector is None:
            return True
        if name in self.namespaces:
            return True
        if self.namespace_selector is None:
            return False
        return self.namespace_selector.matches({NAMESPACE_NAME_LABEL: name, **labels})

    def announcing(self, node_labels: Mapping[str, str], default: Announce) -> Announcing | Silence:
        """May a node with ``node_labels`` announce this pool's addresses, and on which
        interfaces. ``default`` (the global section) applies when the pool has no policy.

        Any matching rule lets the node announce; its interfaces are those of every matching
        rule, and the automatic choice as well when one of them names none (as MetalLB announces
        on every interface when one L2Advertisement names none).
        """
        rules = self.announce
        if rules is None:
            rules = (AnnounceRule(AnyOf((default.node_selector,)), default.interfaces),)
        if not rules:
            return Silence.NOT_ANNOUNCED
        matching = [r for r in rules if r.node_selector.matches(node_labels)]
        if not matching:
            return Silence.NODE_SELECTOR
        named = tuple(dict.fromkeys(name for r in matching for name in r.interfaces))
        return Announcing(named, automatic=any(not r.interfaces for r in matching))


@dataclass(frozen=True)
class Garp:
    rounds: int = 5
    interval_ms: int = 1100
    refresh_seconds: int = 60


@dataclass(frozen=True)
class Announce:
    interfaces: tuple[str, ...] = ()
    node_selector: Selector = field(default_factory=Selector)
    garp: Garp = field(default_factory=Garp)
    conflicts: conflicts.Schedule = field(default_factory=conflicts.Schedule)


@dataclass(frozen=True)
class Reservation:
    """``reservations[index]``: ``address`` is kept for the Service ``service``, whether or not
    that Service exists; no other Service is given it."""

    address: ipam.IP
    service: ServiceKey
    pool: str  # the pool the address lies in
    index: int  # its place in the config's list, to name it in messages

    @property
    def label(self) -> str:
        return f"reservations[{self.index}]"

    @property
    def namespace(self) -> str:
        return self.service.split("/", 1)[0]


@dataclass(frozen=True)
class PoolConfig:
    pools: tuple[Pool, ...]  # ordered by (priority, name): the order auto-assignment tries
    announce: Announce = field(default_factory=Announce)
    reservations: tuple[Reservation, ...] = ()  # in config order

    def pool(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)

    def pool_of(self, ip: ipam.IP) -> Pool | None:
        return next((p for p in self.pools if p.contains(ip)), None)

    def pools_for_namespace(self, name: str, labels: Mapping[str, str]) -> tuple[Pool, ...]:
        """The pools whose addresses Services in this namespace may get, in the order tried."""
        return tuple(p for p in self.pools if p.admits_namespace(name, labels))

    def reallocates(self, ip: ipam.IP) -> bool:
        """Whether a conflict on ``ip`` moves its Service (its pool has ``onConflict:
        reallocate``)."""
        pool = self.pool_of(ip)
        return pool is not None and pool.on_conflict is OnConflict.REALLOCATE

    def announcing(self, ip: ipam.IP, node_labels: Mapping[str, str]) -> Announcing | Silence:
        """May a node with ``node_labels`` announce ``ip``, and on which interfaces."""
        pool = self.pool_of(ip)
        if pool is None:
            return Silence.NOT_IN_POOL
        return pool.announcing(node_labels, self.announce)

    @cached_property
    def _reservation_by_ip(self) -> dict[ipam.IP, Reservation]:
        return {r.address: r for r in self.reservations}

    @cached_property
    def _reservations_by_service(self) -> dict[str, tuple[Reservation, ...]]:
        out: dict[str, tuple[Reservation, ...]] = {}
        for r in self.reservations:
            out[r.service] = (*out.get(r.service, ()), r)
        return out

    def reservation_of(self, ip: ipam.IP) -> Reservation | None:
        """The reservation of ``ip``, if it has one."""
        return self._reservation_by_ip.get(ip)

    def reservations_for(self, service: str) -> tuple[Reservation, ...]:
        """The reservations naming ``service`` ("namespace/name"): at most one per family."""
        return self._reservations_by_service.get(service, ())

    @cached_property
    def _reserved_by_family(self) -> dict[int, frozenset[int]]:
        return {
            v: frozenset(int(r.address) for r in self.reservations if r.address.version == v)
            for v in (4, 6)
        }

    def reserved_values(self, version: int) -> frozenset[int]:
        """The reserved addresses of one family, as integers (what auto-assignment skips)."""
        return self._reserved_by_family[version]


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str) and part.startswith("<"):
            continue  # a union's tag, not a key
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """A strict model's errors as ``(field path, message)``, the path as the YAML spells it."""
    problems = []
    for err in exc.errors():
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "missing":
            msg = "required"
        problems.append((_path(err["loc"]), msg))
    return problems


def check_selector(raw: RawSelector, path: str, problems: list[tuple[str, str]]) -> Selector:
    """The checked selector; a problem for an operator with the wrong values."""
    exprs = []
    for i, e in enumerate(raw.matchExpressions):
        op = Operator(e.operator)
        needs_values = op.takes_values
        if needs_values != bool(e.values):
            problems.append(
                (
                    f"{path}.matchExpressions[{i}].values",
                    f"operator {op} {'needs' if needs_values else 'takes no'} values",
                )
            )
        exprs.append((e.key, op, frozenset(e.values)))
    return Selector.of(raw.matchLabels, tuple(exprs))


def _selectors(
    raw: RawSelector | list[RawSelector], path: str, problems: list[tuple[str, str]]
) -> AnyOf:
    if isinstance(raw, RawSelector):
        return AnyOf((check_selector(raw, path, problems),))
    if not raw:
        problems.append((path, "an empty list selects nothing: leave the key out"))
        return AnyOf()
    return AnyOf(tuple(check_selector(s, f"{path}[{i}]", problems) for i, s in enumerate(raw)))


def _interfaces(names: Sequence[str], path: str, problems: list[tuple[str, str]]) -> None:
    for j, name in enumerate(names):
        if not INTERFACE_NAME.match(name):
            problems.append((f"{path}[{j}]", f"{name!r} is not an interface name"))


def _pool_announce(
    raw: bool | RawAnnounceRule | list[RawAnnounceRule],
    path: str,
    problems: list[tuple[str, str]],
) -> tuple[AnnounceRule, ...] | None:
    if raw is True:
        return None
    if raw is False:
        return ()
    if isinstance(raw, list) and not raw:
        problems.append((path, "an empty list announces nothing: write announce: false"))
        return ()
    rules = [raw] if isinstance(raw, RawAnnounceRule) else raw
    out = []
    for i, rule in enumerate(rules):
        where = path if isinstance(raw, RawAnnounceRule) else f"{path}[{i}]"
        _interfaces(rule.interfaces, f"{where}.interfaces", problems)
        selector = _selectors(rule.nodeSelector, f"{where}.nodeSelector", problems)
        out.append(AnnounceRule(selector, tuple(rule.interfaces)))
    return tuple(out)


def check(raw: RawConfig) -> PoolConfig:
    """Every rule beyond types: names, addresses, overlaps, selectors, interfaces."""
    problems: list[tuple[str, str]] = []
    pools: list[Pool] = []
    seen_names: dict[str, int] = {}
    labelled: list[tuple[ipam.Range, str]] = []
    for i, rp in enumerate(raw.pools):
        path = f"pools[{i}]"
        if not DNS1123_LABEL.match(rp.name):
            problems.append(
                (
                    f"{path}.name",
                    f"{rp.name!r} is not a DNS-1123 label "
                    "(lower-case letters, digits and '-', at most 63)",
                )
            )
        elif rp.name in seen_names:
            problems.append(
                (
                    f"{path}.name",
                    f"duplicate pool name {rp.name!r} (also pools[{seen_names[rp.name]}])",
                )
            )
        else:
            seen_names[rp.name] = i
        ranges = []
        for j, text in enumerate(rp.addresses):
            try:
                rng = ipam.parse_range(text)
            except ValueError as exc:
                problems.append((f"{path}.addresses[{j}]", str(exc)))
                continue
            ranges.append(rng)
            labelled.append((rng, f"{path}.addresses[{j}] ({text})"))
        for j, ns in enumerate(rp.namespaces):
            if not DNS1123_LABEL.match(ns):
                problems.append((f"{path}.namespaces[{j}]", f"{ns!r} is not a namespace name"))
        namespace_selector = (
            None
            if rp.namespaceSelector is None
            else _selectors(rp.namespaceSelector, f"{path}.namespaceSelector", problems)
        )
        pools.append(
            Pool(
                rp.name,
                tuple(ranges),
                rp.autoAssign,
                rp.avoidBuggyIPs,
                frozenset(rp.namespaces),
                _selectors(rp.serviceSelector, f"{path}.serviceSelector", problems),
                rp.priority,
                namespace_selector,
                _pool_announce(rp.announce, f"{path}.announce", problems),
                OnConflict(rp.onConflict),
            )
        )
    clash = ipam.first_overlap(labelled)
    if clash:
        first, second = sorted(clash, key=lambda label: _label_order(label))
        problems.append((second.split(" ", 1)[0], f"overlaps {first}"))
    _interfaces(raw.announce.interfaces, "announce.interfaces", problems)
    node_selector = check_selector(raw.announce.nodeSelector, "announce.nodeSelector", problems)
    reservations = _reservations(raw.reservations, pools, problems)
    if problems:
        raise ConfigError(problems)
    g, c = raw.announce.garp, raw.announce.conflicts
    return PoolConfig(
        pools=tuple(sorted(pools, key=lambda p: (p.priority, p.name))),
        announce=Announce(
            tuple(raw.announce.interfaces),
            node_selector,
            Garp(g.rounds, g.intervalMs, g.refreshSeconds),
            conflicts.Schedule(
                probes=c.probes,
                interval=c.intervalMs / 1000,
                wait=c.waitMs / 1000,
                recheck=float(c.recheckSeconds),
            ),
        ),
        reservations=reservations,
    )


def _reservations(
    raws: Sequence[RawReservation], pools: Sequence[Pool], problems: list[tuple[str, str]]
) -> tuple[Reservation, ...]:
    """The ``reservations`` entries, checked against the pools and each other."""
    out: list[Reservation] = []
    by_ip: dict[ipam.IP, int] = {}
    by_service: dict[tuple[str, int], int] = {}  # (service, family) → index
    for i, raw in enumerate(raws):
        path = f"reservations[{i}]"
        text = raw.address.strip()
        ip: ipam.IP | None = None
        if "/" in text or "-" in text:
            problems.append((f"{path}.address", f"{text!r} must be one address, not a range"))
        else:
            try:
                ip = ipam.parse_ip(text)
            except ValueError as exc:
                problems.append((f"{path}.address", str(exc)))
        pool = next((p for p in pools if p.contains(ip)), None) if ip is not None else None
        if ip is not None and pool is None:
            problems.append((f"{path}.address", f"{ip} is in no pool"))
        elif ip is not None and pool is not None and pool.avoid_buggy_ips and ipam.is_buggy(ip):
            problems.append(
                (
                    f"{path}.address",
                    f"{ip} ends in .0 or .255 and pool {pool.name!r} has avoidBuggyIPs",
                )
            )
        elif ip is not None and ip in by_ip:
            problems.append(
                (f"{path}.address", f"{ip} is reserved twice (also reservations[{by_ip[ip]}])")
            )
        elif ip is not None:
            by_ip[ip] = i
        service = _service_key(raw.service, f"{path}.service", problems)
        if ip is None or pool is None or service is None:
            continue
        same = by_service.setdefault((service, ip.version), i)
        if same != i:
            problems.append(
                (
                    f"{path}.service",
                    f"{service} has an IPv{ip.version} reservation already (reservations[{same}]):"
                    " a Service holds one address per IP family",
                )
            )
        out.append(Reservation(ip, service, pool.name, i))
    return tuple(out)


def _service_key(text: str, path: str, problems: list[tuple[str, str]]) -> ServiceKey | None:
    """``namespace/name`` with a valid namespace and Service name, or a problem."""
    namespace, slash, name = text.partition("/")
    if not slash or "/" in name:
        problems.append((path, f"{text!r} must be namespace/name"))
        return None
    if not DNS1123_LABEL.match(namespace):
        problems.append((path, f"{namespace!r} is not a namespace name"))
        return None
    if not DNS1035_LABEL.match(name):
        problems.append(
            (
                path,
                f"{name!r} is not a Service name (a DNS-1035 label: lower-case letters, digits "
                "and '-', starting with a letter, at most 63)",
            )
        )
        return None
    return ServiceKey(text)


def unusable_reservations(cfg: PoolConfig) -> list[tuple[Reservation, str]]:
    """Reservations their pool can be seen to refuse from the config alone, and why.

    A valid config, but the named Service will be refused its address (``NotAdmitted``).
    """
    out = []
    for r in cfg.reservations:
        pool = cfg.pool(r.pool)
        why = namespace_refusal(pool, r.namespace) if pool is not None else None
        if why:
            out.append((r, f"{why}: {r.service} will be refused {r.address}"))
    return out


def namespace_refusal(pool: Pool, namespace: str) -> str | None:
    """Why ``pool`` refuses every Service of ``namespace``, judged from the name alone; None
    when it admits them, or when only the namespace's labels could tell (a
    ``namespaceSelector`` on other labels than ``kubernetes.io/metadata.name``)."""
    selector = pool.namespace_selector
    if selector is not None and any(
        r.key != NAMESPACE_NAME_LABEL for s in selector.selectors for r in s.requirements
    ):
        return None
    if pool.admits_namespace(namespace, {}):
        return None
    return namespace_rule(pool)


def namespace_rule(pool: Pool) -> str:
    """The namespaces ``pool`` admits, in words: "pool 'web' admits only namespaces a, b or
    namespaces matching team=web"."""
    what = [f"namespaces {', '.join(sorted(pool.namespaces))}"] if pool.namespaces else []
    if pool.namespace_selector is not None:
        what.append(f"namespaces matching {pool.namespace_selector}")
    return f"pool {pool.name!r} admits only {' or '.join(what) or 'every namespace'}"


def _label_order(label: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\[(\d+)\]", label.split(" ", 1)[0]))


def parse(document: object) -> PoolConfig:
    """A decoded YAML document (a mapping) → checked config."""
    if not isinstance(document, dict):
        kind = "empty" if document is None else type(document).__name__
        raise ConfigError([("", f"the config must be a mapping with a 'pools' key, not {kind}")])
    try:
        raw = RawConfig.model_validate(document)
    except ValidationError as exc:
        raise ConfigError(pydantic_problems(exc)) from None
    return check(raw)


def parse_yaml(text: str) -> PoolConfig:
    """YAML text → checked config; a key given twice in one mapping is an error too."""
    if len(text.encode(errors="replace")) > MAX_CONFIG_BYTES:
        raise ConfigError([("", f"the config is larger than {MAX_CONFIG_BYTES} bytes")])
    try:
        document = strict_yaml.load(text)
    except strict_yaml.YamlError as exc:
        raise ConfigError([("", exc.detail)]) from None
    return parse(document)


def parse_configmap(data: Mapping[str, object] | None, key: str = CONFIG_KEY) -> PoolConfig:
    if not data or key not in data:
        raise ConfigError([("", f"the ConfigMap has no key {key!r}")])
    text = data[key]
    if not isinstance(text, str):  # a hand-written manifest; the API server only stores strings
        raise ConfigError([(f"data.{key}", "must be a string holding the YAML config")])
    return parse_yaml(text)


@dataclass
class LastGood:
    """The pool config in force for a component: the last ConfigMap data that parsed (pure).

    The controller and every speaker hold one. Data whose config text is unchanged is not parsed
    again; data that does not parse leaves the last good config in force (MetalLB's "stale"
    config: reported, never applied).
    """

    config: PoolConfig | None = None
    seen: object = None  # the ``config.yaml`` value last seen, good or bad; None: none yet

    def update(self, data: Mapping[str, object] | None) -> PoolConfig | ConfigError | None:
        """The ConfigMap's ``data`` now: the new config when it took effect, the error when the
        new text does not parse (``config`` is unchanged), None when the text is unchanged."""
        text = (data or {}).get(CONFIG_KEY)
        if text == self.seen:
            return None
        self.seen = text
        try:
            self.config = parse_configmap(data)
        except ConfigError as exc:
            return exc
        return self.config
