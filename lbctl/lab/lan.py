"""A LAN of network namespaces on a Linux bridge, built with netlink; needs root (I/O).

The bridge lives in the root namespace and holds the gateway addresses, so the hosts reach
services bound there (the API server) like machines on a real LAN reach their control plane.
"""

from __future__ import annotations

import concurrent.futures
import errno
import fcntl
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tenacity
from pyroute2 import IPRoute, NetNS, netns

from lbctl.lab import plan as lanplan
from lbctl.lab import procs

LOCK = "/tmp/lbctl-lan.lock"  # machine-wide: choosing a range and claiming it are one step


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

    def packets(self) -> list[Any]:
        # Importing the layers registers Ethernet with the pcap reader (else: Raw).
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.utils import rdpcap

        self.stop()
        return list(rdpcap(str(self.pcap))) if self.pcap.stat().st_size else []

    def so_far(self) -> list[Any]:
        """The packets written so far, the capture going on (tcpdump -U writes each at once);
        a record still being written is left for the next call."""
        import scapy.layers.inet6
        import scapy.layers.l2  # noqa: F401
        from scapy.error import Scapy_Exception
        from scapy.utils import PcapReader

        out: list[Any] = []
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
        errors = []
        for host in self.plan.hosts:
            try:
                if host.netns in netns.listnetns():
                    netns.remove(host.netns)
            except Exception as exc:
                errors.append(f"namespace {host.netns}: {exc}")
        with IPRoute() as ipr:
            for ifname in [h.ifname_root for h in self.plan.hosts] + [self.plan.bridge]:
                for index in ipr.link_lookup(ifname=ifname):
                    try:
                        ipr.link("del", index=index)
                    except Exception as exc:
                        # ENODEV: it went with its namespace's peer meanwhile, as it should.
                        if getattr(exc, "code", None) != errno.ENODEV:
                            errors.append(f"link {ifname}: {exc}")
        if errors:
            raise LanError("cleanup left things behind: " + "; ".join(errors))


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
) -> Lan:
    """Build the bridge and one namespace per name; on any failure remove what was made.

    ``on_plan`` hears the chosen plan before anything is built (the lab records it, so that
    ``lab down`` finds the LAN even if this process dies half-way).

    Only two documentation ranges exist, so only two LANs fit on a machine at once: while
    both are taken (by other labs or test runs), wait up to ``LBCTL_LAN_WAIT`` seconds (default
    900) for one to come free. Choosing and claiming a range happen under one machine-wide
    lock, so two processes never pick the same one.
    """
    wait = float(os.environ.get("LBCTL_LAN_WAIT", "900"))
    claim = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(lanplan.RangesInUse),
        stop=tenacity.stop_after_delay(wait),
        wait=tenacity.wait_fixed(1),
        reraise=True,
    )
    workdir.mkdir(parents=True, exist_ok=True)
    return claim(_claim, names, workdir, prefix or new_prefix(), subnet4, subnet6, on_plan)


def _claim(
    names: Sequence[str],
    workdir: Path,
    prefix: str,
    subnet4: str | None,
    subnet6: str | None,
    on_plan: Callable[[lanplan.LanPlan], None] | None = None,
) -> Lan:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        routes, needed = root_routes(), needed_addresses()
        the_plan = lanplan.plan_lan(
            prefix,
            names,
            lanplan.pick_free(lanplan.IPV4_CANDIDATES, routes, subnet4, needed),
            lanplan.pick_free(lanplan.IPV6_CANDIDATES, routes, subnet6, needed),
        )
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
