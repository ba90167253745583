"""A LAN of network namespaces on a Linux bridge, built with netlink; needs root (I/O).

The bridge lives in the root namespace and holds the gateway addresses, so the hosts reach
services bound there (the API server) like machines on a real LAN reach their control plane.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import functools
import ipaddress
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import tenacity
from pyroute2 import IPRoute, NetNS, netns

from lbctl.lab import plan as lanplan
from lbctl.lab import procs

if TYPE_CHECKING:  # scapy is imported where packets are read
    from scapy.packet import Packet

LOCK = "/tmp/lbctl-lan.lock"  # machine-wide: choosing a range and claiming it are one step
RECORDS = Path("/run/lbctl/lans")  # one JSON record per LAN: who keeps it, how to remove it


class LanError(RuntimeError):
    """The LAN could not be built; the message says which step."""


def missing_privileges() -> str | None:
    """Why namespaces can't be made here, or None when they can."""
    if os.geteuid() != 0:
        return "not root: network namespaces, bridges and veth pairs need root"
    if (
        not Path("/run").is_dir()
        or subprocess.run(["ip", "-V"], capture_output=True, check=False).returncode != 0
    ):
        return "iproute2 (`ip`) is missing"
    name = f"lbprobe{secrets.token_hex(3)}"
    try:
        netns.create(name)
    except Exception as exc:  # any failure means: no namespaces here
        return f"cannot create a network namespace: {exc}"
    netns.remove(name)
    return None


def root_routes() -> list[lanplan.IPNetwork]:
    """Every route of the root namespace, in all tables, as networks."""
    nets: list[lanplan.IPNetwork] = []
    with IPRoute() as ipr:
        for msg in ipr.route("dump"):
            dst = msg.get("dst")
            if dst is None:
                continue
            nets.append(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
    return nets


# Hosts whose addresses a lab must never shadow: the registries this project installs from.
REGISTRY_HOSTS = (
    "deb.debian.org",
    "security.debian.org",
    "pypi.org",
    "files.pythonhosted.org",
    "proxy.golang.org",
    "sum.golang.org",
    "dl.k8s.io",
)


def needed_addresses(
    hosts: Path = Path("/etc/hosts"),
    resolv: Path = Path("/etc/resolv.conf"),
    names: Sequence[str] = REGISTRY_HOSTS,
) -> list[lanplan.IPAddress]:
    """Addresses this machine must keep reaching: /etc/hosts, its resolvers, its registries.

    Registries are looked up (here the resolver answers 203.0.113.80, a documentation
    address, for deb.debian.org, pypi.org and proxy.golang.org); a lookup that fails or
    takes over 3 s is skipped.
    """
    found: list[lanplan.IPAddress] = []
    for path, first in ((hosts, None), (resolv, "nameserver")):
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            words = line.split("#", 1)[0].split()
            if first is not None:
                if len(words) < 2 or words[0] != first:
                    continue
                words = words[1:]
            if words:
                found.extend(_address(words[0]))
    if names:
        with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
            lookups = [pool.submit(socket.getaddrinfo, n, None) for n in names]
            done, _ = concurrent.futures.wait(lookups, timeout=3)
            for lookup in done:
                if lookup.exception() is None:
                    for info in lookup.result():
                        found.extend(_address(str(info[4][0])))
    return list(dict.fromkeys(found))


def _address(text: str) -> list[lanplan.IPAddress]:
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return []
    return [] if addr.is_loopback else [addr]


def _sysctl(ns: str, key: str, value: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", ns, "sysctl", "-qw", f"{key}={value}"],
        check=True,
        capture_output=True,
    )


@dataclass
class Capture:
    """tcpdump in a host's namespace writing a pcap; ``packets()`` reads it with scapy."""

    proc: procs.Process
    pcap: Path

    def packets(self) -> list[Packet]:
        # Importing the layers registers Ethernet with the pcap reader (else: Raw).
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.utils import rdpcap

        self.stop()
        return list(rdpcap(str(self.pcap))) if self.pcap.stat().st_size else []

    def so_far(self) -> list[Packet]:
        """The packets written so far, the capture going on (tcpdump -U writes each at once);
        a record still being written is left for the next call."""
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.error import Scapy_Exception
        from scapy.utils import PcapReader

        out: list[Packet] = []
        try:
            with PcapReader(str(self.pcap)) as reader:
                out.extend(reader)
        except (EOFError, OSError, Scapy_Exception):
            pass  # no header yet, or a record cut short: what was read stands
        return out

    def stop(self) -> None:
        if self.proc.alive():
            self.proc.signal(signal.SIGINT)  # tcpdump flushes its file on SIGINT
            try:
                assert self.proc.popen is not None
                self.proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Lan:
    plan: lanplan.LanPlan
    workdir: Path
    processes: list[procs.Process] = field(default_factory=list)

    @property
    def hosts(self) -> dict[str, lanplan.HostPlan]:
        return {h.name: h for h in self.plan.hosts}

    def host(self, name: str) -> lanplan.HostPlan:
        try:
            return self.hosts[name]
        except KeyError:
            raise LanError(f"no host {name!r} on this LAN; hosts: {sorted(self.hosts)}") from None

    def run(
        self, name: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command to completion inside host ``name``."""
        return subprocess.run(
            procs.netns_argv(self.host(name).netns, argv),
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def start(
        self, name: str, label: str, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> procs.Process:
        """Start a long-running process inside host ``name``; stopped by ``destroy``."""
        proc = procs.Process(
            f"{label}@{name}",
            argv,
            netns=self.host(name).netns,
            log=self.workdir / f"{name}-{label}.log",
            env=env,
        )
        self.processes.append(proc.start())
        return proc

    @contextmanager
    def capture(self, name: str, bpf: str = "", *, ifname: str = "eth0") -> Iterator[Capture]:
        """Capture packets on ``ifname`` of host ``name`` while the block runs."""
        pcap = self.workdir / f"{name}-{secrets.token_hex(4)}.pcap"
        argv = [
            "tcpdump",
            "-i",
            ifname,
            "--immediate-mode",
            "-U",
            "-n",
            "-w",
            str(pcap),
            *bpf.split(),
        ]
        proc = procs.Process(
            f"tcpdump@{name}", argv, netns=self.host(name).netns, log=pcap.with_suffix(".log")
        )
        self.processes.append(proc.start())
        cap = Capture(proc, pcap)
        try:
            procs.wait_until(
                "tcpdump to listen", lambda: "listening on" in proc.tail(), timeout=10, watch=[proc]
            )
            yield cap
            time.sleep(0.05)  # let the last frame reach the file before SIGINT
        finally:
            cap.stop()

    def destroy(self) -> None:
        """Remove every process, namespace and link of this LAN; safe to call twice."""
        for proc in reversed(self.processes):
            proc.stop(timeout=5)
        self.processes.clear()
        remove(self.plan)


def remove(p: lanplan.LanPlan) -> None:
    """Remove the namespaces, links and record of the LAN planned as ``p``; what is already
    gone is skipped, so this is safe to call twice."""
    errors = []
    for host in p.hosts:
        try:
            if host.netns in netns.listnetns():
                netns.remove(host.netns)
        except Exception as exc:
            errors.append(f"namespace {host.netns}: {exc}")
    with IPRoute() as ipr:
        for ifname in [h.ifname_root for h in p.hosts] + [p.bridge]:
            for index in ipr.link_lookup(ifname=ifname):
                try:
                    ipr.link("del", index=index)
                except Exception as exc:
                    # ENODEV: it went with its namespace's peer meanwhile, as it should.
                    if getattr(exc, "code", None) != errno.ENODEV:
                        errors.append(f"link {ifname}: {exc}")
    if errors:
        raise LanError("cleanup left things behind: " + "; ".join(errors))
    (RECORDS / f"{p.prefix}.json").unlink(missing_ok=True)


def relink_commands(p: lanplan.LanPlan, host: lanplan.HostPlan) -> list[list[str]]:
    """Commands (run inside ``host``) that bring its link up with what ``ip link set down``
    took away (pure): the IPv6 address (not kept on down by default) and both default routes
    (IPv4 addresses and on-link routes come back by themselves)."""
    v6 = f"{host.ipv6}/{p.subnet6.prefixlen}"
    return [
        ["ip", "link", "set", "eth0", "up"],
        ["ip", "-6", "addr", "replace", v6, "dev", "eth0", "nodad"],
        ["ip", "route", "replace", "default", "via", str(p.gateway4)],
        ["ip", "-6", "route", "replace", "default", "via", str(p.gateway6)],
    ]


def new_prefix() -> str:
    """A per-run prefix (``lt`` + 4 hex) for every namespace and link name."""
    return "lt" + secrets.token_hex(2)


def create(
    names: Sequence[str],
    workdir: Path,
    *,
    prefix: str | None = None,
    subnet4: str | None = None,
    subnet6: str | None = None,
    on_plan: Callable[[lanplan.LanPlan], None] | None = None,
    persistent: bool = False,
    down: Sequence[str] = (),
    down_env: Mapping[str, str] | None = None,
) -> Lan:
    """Build the bridge and one namespace per name; on any failure remove what was made.

    ``on_plan`` hears the chosen plan before anything is built (the lab records it, so that
    ``lab down`` finds the LAN even if this process dies half-way).

    Only two documentation ranges exist, so only two LANs fit on a machine at once: while
    both are taken (by other labs or test runs), wait up to ``LBCTL_LAN_WAIT`` seconds (default
    900) for one to come free. Choosing and claiming a range happen under one machine-wide
    lock, so two processes never pick the same one.

    Each LAN is recorded in ``RECORDS`` with its keeper (see ``keeper_for``): a LAN whose
    keeper died without removing it (a test run or benchmark killed with SIGKILL) is removed
    by the next ``create``, with ``down`` (``down_env`` added to the environment) run first
    when removing it takes more than its namespaces and links. A ``persistent`` LAN (a user's
    lab) has no keeper unless ``LBCTL_LAN_KEEPER`` names one, and stays until removed.
    """
    wait = float(os.environ.get("LBCTL_LAN_WAIT", "900"))
    claim = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(lanplan.RangesInUse),
        stop=tenacity.stop_after_delay(wait),
        wait=tenacity.wait_fixed(1),
        reraise=True,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    record = functools.partial(
        lanplan.LanRecord,
        names=tuple(names),
        keeper=keeper_for(persistent),
        down=tuple(down),
        down_env=tuple(sorted((down_env or {}).items())),
    )
    return claim(_claim, record, workdir, prefix or new_prefix(), subnet4, subnet6, on_plan)


def keeper_for(persistent: bool) -> lanplan.Keeper | None:
    """The process named by ``LBCTL_LAN_KEEPER`` (a test run keeping the labs it starts), else
    None for a persistent LAN and this process for any other."""
    named = os.environ.get("LBCTL_LAN_KEEPER")
    pid = int(named) if named else None if persistent else os.getpid()
    start = None if pid is None else procs.start_time(pid)
    if pid is not None and start is None:
        raise LanError(f"LBCTL_LAN_KEEPER={pid}: no such process")
    return None if pid is None or start is None else lanplan.Keeper(pid, start)


def keep_with_this_process() -> None:
    """Make this process the keeper of every LAN it and its children make, labs included:
    a test run or benchmark killed outright leaves nothing that blocks the next one."""
    os.environ.setdefault("LBCTL_LAN_KEEPER", str(os.getpid()))


def records() -> list[lanplan.LanRecord]:
    """Every LAN record on this machine; one that cannot be read is skipped (and reported)."""
    found = []
    for path in sorted(RECORDS.glob("*.json")):
        try:
            raw = json.loads(path.read_text())
            keeper = raw["keeper"] and lanplan.Keeper(**raw["keeper"])
            found.append(
                lanplan.LanRecord(
                    raw["prefix"],
                    tuple(raw["names"]),
                    raw["subnet4"],
                    raw["subnet6"],
                    keeper,
                    tuple(raw["down"]),
                    tuple((k, v) for k, v in raw["down_env"]),
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"lbctl: skipping unreadable LAN record {path}: {exc}", file=sys.stderr)
    return found


def _save(record: lanplan.LanRecord) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True)
    path = RECORDS / f"{record.prefix}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record)))
    tmp.replace(path)


def remove_abandoned() -> None:
    """Remove every LAN whose keeper died without removing it, saying so on stderr."""
    for gone in lanplan.abandoned(records(), procs.start_time):
        assert gone.keeper is not None
        print(
            f"lbctl: removing LAN {gone.prefix} ({gone.subnet4}): process {gone.keeper.pid}, "
            "which kept it, ended without removing it",
            file=sys.stderr,
        )
        if gone.down:
            try:
                subprocess.run(
                    gone.down,
                    env={**os.environ, **dict(gone.down_env)},
                    check=False,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    timeout=300,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:  # its namespaces still go
                print(f"lbctl: {' '.join(gone.down)}: {exc}", file=sys.stderr)
        remove(gone.plan())  # whatever `down` left, and the record


def _claim(
    record: Callable[..., lanplan.LanRecord],
    workdir: Path,
    prefix: str,
    subnet4: str | None,
    subnet6: str | None,
    on_plan: Callable[[lanplan.LanPlan], None] | None = None,
) -> Lan:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        remove_abandoned()
        routes, needed = root_routes(), needed_addresses()
        net4 = lanplan.pick_free(lanplan.IPV4_CANDIDATES, routes, subnet4, needed)
        net6 = lanplan.pick_free(lanplan.IPV6_CANDIDATES, routes, subnet6, needed)
        the_record = record(prefix=prefix, subnet4=str(net4), subnet6=str(net6))
        the_plan = the_record.plan()
        _save(the_record)  # before building: a death half-way still leaves it findable
        lan = Lan(the_plan, workdir)
        if on_plan is not None:
            on_plan(the_plan)
        try:
            _build(the_plan)
        except BaseException:
            lan.destroy()
            raise
        return lan


def _build(p: lanplan.LanPlan) -> None:
    nodad = 0x02  # IFA_F_NODAD: addresses usable at once, no duplicate-address wait
    with IPRoute() as ipr:
        ipr.link("add", ifname=p.bridge, kind="bridge")
        br = ipr.link_lookup(ifname=p.bridge)[0]
        ipr.addr("add", index=br, address=str(p.gateway4), prefixlen=p.subnet4.prefixlen)
        ipr.addr(
            "add", index=br, address=str(p.gateway6), prefixlen=p.subnet6.prefixlen, flags=nodad
        )
        ipr.link("set", index=br, state="up")
        for host in p.hosts:
            netns.create(host.netns)
            ipr.link(
                "add",
                ifname=host.ifname_root,
                kind="veth",
                peer={"ifname": f"{p.prefix}tmp", "net_ns_fd": host.netns},
            )
            end = ipr.link_lookup(ifname=host.ifname_root)[0]
            ipr.link("set", index=end, master=br, state="up")
            _sysctl(host.netns, "net.ipv6.conf.all.accept_dad", "0")
            _sysctl(host.netns, "net.ipv6.conf.default.accept_dad", "0")
            with NetNS(host.netns) as ns:
                lo = ns.link_lookup(ifname="lo")[0]
                ns.link("set", index=lo, state="up")
                eth = ns.link_lookup(ifname=f"{p.prefix}tmp")[0]
                ns.link("set", index=eth, ifname="eth0", address=host.mac)
                ns.addr("add", index=eth, address=str(host.ipv4), prefixlen=p.subnet4.prefixlen)
                ns.addr(
                    "add",
                    index=eth,
                    address=str(host.ipv6),
                    prefixlen=p.subnet6.prefixlen,
                    flags=nodad,
                )
                ns.link("set", index=eth, state="up")
                ns.route("add", dst="0.0.0.0/0", gateway=str(p.gateway4))
                ns.route("add", dst="::/0", gateway=str(p.gateway6), family=10)
