"""A real Kubernetes control plane here: etcd, kube-apiserver, kube-controller-manager (I/O).

Used by the test fixtures and by ``lbctl lab``. Everything lives under one work directory;
every process is started and stopped by PID.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lbctl import ipam
from lbctl.lab import procs

ADMIN_TOKEN_USER = "lbctl-admin"
KCM_CONTROLLERS = (
    "endpoint",
    "endpointslice",
    "endpointslicemirroring",
    "namespace",
    "serviceaccount",
    "serviceaccount-token",
)
SERVICE_CIDRS = ("10.96.0.0/16", "fd00:10:96::/112")  # virtual ClusterIPs: never a traffic target
WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")
# Who wrote what: one line per write (Metadata level: who, what, when; never a body).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [{"level": "Metadata", "verbs": list(WRITE_VERBS)}, {"level": "None"}],
}


def audit_args(directory: Path) -> list[str]:
    """kube-apiserver flags that log every write to ``directory/audit.log`` (JSON lines,
    ``audit.k8s.io/v1`` Events), with the policy written beside it; at most 2 x 50 MB."""
    directory.mkdir(parents=True, exist_ok=True)
    policy = directory / "audit-policy.json"
    policy.write_text(json.dumps(AUDIT_POLICY))
    return [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={directory / 'audit.log'}",
        "--audit-log-format=json",
        "--audit-log-maxsize=50",
        "--audit-log-maxbackup=1",
    ]


@dataclass(frozen=True)
class Write:
    """One audited write: ``at`` in Unix seconds (the response's ``stageTimestamp``)."""

    at: float
    user: str
    verb: str
    resource: str


def audit_writes(lines: Sequence[str]) -> list[Write]:
    """The writes in audit log lines, skipping what is not a complete JSON Event (pure)."""
    from datetime import datetime

    found = []
    for line in lines:
        try:
            event = json.loads(line)
            at = datetime.fromisoformat(event["stageTimestamp"].replace("Z", "+00:00"))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
        if event.get("verb") not in WRITE_VERBS or event.get("stage") != "ResponseComplete":
            continue
        ref = event.get("objectRef") or {}
        resource = "/".join(x for x in (ref.get("resource"), ref.get("subresource")) if x)
        found.append(Write(at.timestamp(), event.get("user", {}).get("username", ""),
                           event["verb"], resource))  # fmt: skip
    return found


def service_ip(cidr: str) -> str:
    """The `kubernetes` Service's ClusterIP: the first address of the service range (pure)."""
    import ipaddress

    return str(ipaddress.ip_network(cidr).network_address + 1)


class ControlPlaneError(RuntimeError):
    """The control plane could not be set up; the message says which step."""


def _openssl(step: str, *args: str, cwd: Path) -> None:
    procs.output(
        ["openssl", *args], error=ControlPlaneError, what=f"openssl ({step}) failed", cwd=cwd
    )


def make_certificates(pki: Path, sans: Sequence[str]) -> None:
    """A CA, a serving certificate for ``sans`` (IPs and DNS names), and a service-account key."""
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "CA",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "365",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=lbctl-lab-ca",
        cwd=pki,
    )
    alt = ",".join(("IP:" if ipam.is_address(s) else "DNS:") + s for s in sans)
    (pki / "server.ext").write_text(
        f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
    )
    _openssl(
        "serving key",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=kube-apiserver",
        cwd=pki,
    )
    _openssl(
        "serving certificate",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "365",
        "-out",
        "server.crt",
        "-extfile",
        "server.ext",
        cwd=pki,
    )
    _openssl("service-account key", "genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl(
        "service-account public key", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki
    )


def client_certificate(pki: Path, name: str, common_name: str, org: str = "") -> None:
    """``<name>.crt`` / ``<name>.key``: a client certificate from the lab CA (the API server
    reads the user from CN and the groups from O, as for kubelets: ``system:node:NAME`` in
    ``system:nodes``)."""
    (pki / f"{name}.ext").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    subject = f"/CN={common_name}" + (f"/O={org}" if org else "")
    _openssl(f"{name} key", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", subject, cwd=pki)  # fmt: skip
    _openssl(f"{name} certificate", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "365", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext", cwd=pki)  # fmt: skip


def kubeconfig_yaml(
    *, server: str, ca_file: Path, token: str, user: str, cert: Path | None = None
) -> str:
    """A kubeconfig with a bearer token, or with a client certificate ``cert`` (and its
    ``.key`` beside it)."""
    creds = (
        f"    client-certificate: {cert}\n    client-key: {cert.with_suffix('.key')}\n"
        if cert is not None
        else f"    token: {token}\n"
    )
    return (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: lab\n  cluster:\n    server: {server}\n"
        f"    certificate-authority: {ca_file}\n"
        f"users:\n- name: {user}\n  user:\n{creds}"
        f"contexts:\n- name: lab\n  context:\n    cluster: lab\n    user: {user}\n"
        "current-context: lab\n"
    )


@dataclass
class ControlPlane:
    """etcd + kube-apiserver (+ optionally kube-controller-manager) under ``workdir``.

    ``bind_address`` 0.0.0.0 lets node namespaces reach the API server through the lab bridge;
    ``extra_sans`` are the addresses they use, so TLS verification holds there too.

    ``advertise_address`` (the bridge gateway) makes the ``kubernetes`` Service point at an
    address Pods reach, as in a real cluster; it also turns on what real kubelets need: client
    certificates from the lab CA (``client_certificate``), Node authorization with
    NodeRestriction, and the API server's own client certificate for kubelets (logs, exec).
    """

    workdir: Path
    binaries: Mapping[str, Path]
    bind_address: str = "127.0.0.1"
    advertise_address: str = ""  # "": loopback and no endpoints for the `kubernetes` Service
    extra_sans: Sequence[str] = ()
    apiserver_args: Sequence[str] = ()  # e.g. --watch-cache=false, so watches reach etcd
    token: str = "lbctl-admin-token"
    processes: list[procs.Process] = field(default_factory=list)
    etcd_url: str = ""
    port: int = 0
    _apiserver: procs.Process | None = field(default=None, init=False, repr=False)

    @property
    def pki(self) -> Path:
        return self.workdir / "pki"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def server(self, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}"

    def write_kubeconfig(
        self,
        path: Path,
        *,
        host: str = "127.0.0.1",
        token: str | None = None,
        user: str = ADMIN_TOKEN_USER,
        cert: str | None = None,
    ) -> Path:
        """A kubeconfig for ``host``: the admin token, ``token``, or the client certificate
        ``cert`` (a name given to ``client_certificate``)."""
        path.write_text(
            kubeconfig_yaml(
                server=self.server(host),
                ca_file=self.ca_file,
                token=token or self.token,
                user=user,
                cert=self.pki / f"{cert}.crt" if cert else None,
            )
        )
        return path

    def start(self, *, controller_manager: bool = False) -> ControlPlane:
        try:
            self._start(controller_manager)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, controller_manager: bool) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        make_certificates(
            self.pki,
            [
                "127.0.0.1",
                "::1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                service_ip(SERVICE_CIDRS[0]),  # in-cluster clients: the `kubernetes` Service
                *self.extra_sans,
            ],
        )
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.token},{ADMIN_TOKEN_USER},{ADMIN_TOKEN_USER},system:masters\n")
        client, peer = procs.free_port(), procs.free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        self.etcd_url = etcd_url
        etcd = procs.Process(
            "etcd",
            [
                str(self.binaries["etcd"]),
                "--data-dir",
                str(self.workdir / "etcd-data"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                peer_url,
                "--initial-advertise-peer-urls",
                peer_url,
                "--initial-cluster",
                f"default={peer_url}",
            ],
            log=self.workdir / "etcd.log",
        )
        self.processes.append(etcd.start())
        self.port = procs.free_port()
        apiserver = procs.Process(
            "kube-apiserver",
            [
                str(self.binaries["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self.port}",
                f"--bind-address={self.bind_address}",
                *self._advertise_args(),
                f"--cert-dir={self.pki}",
                f"--tls-cert-file={self.pki / 'server.crt'}",
                f"--tls-private-key-file={self.pki / 'server.key'}",
                f"--token-auth-file={tokens}",
                f"--authorization-mode={'Node,RBAC' if self.advertise_address else 'RBAC'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={self.pki / 'sa.pub'}",
                f"--service-account-signing-key-file={self.pki / 'sa.key'}",
                f"--service-cluster-ip-range={','.join(SERVICE_CIDRS)}",
                "--allow-privileged=true",
                *self.apiserver_args,
            ],
            log=self.workdir / "kube-apiserver.log",
        )
        self.processes.append(apiserver.start())
        self._apiserver = apiserver
        self.write_kubeconfig(self.kubeconfig)
        procs.wait_until(
            "kube-apiserver /readyz", self.ready, timeout=90, interval=0.2, watch=[etcd, apiserver]
        )
        if controller_manager:
            self.start_controller_manager()

    def _advertise_args(self) -> list[str]:
        if not self.advertise_address:
            # No endpoints for the `kubernetes` Service: a loopback address is not a valid one.
            return ["--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
        client_certificate(
            self.pki, "apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"
        )
        return [
            f"--advertise-address={self.advertise_address}",
            f"--client-ca-file={self.ca_file}",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={self.pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={self.pki / 'apiserver-kubelet-client.key'}",
            # Node names do not resolve here: dial kubelets (logs, exec) by their address.
            "--kubelet-preferred-address-types=InternalIP,Hostname",
        ]

    def start_cluster_controllers(self, *, node_grace: str = "16s") -> list[procs.Process]:
        """kube-controller-manager with all its default controllers, and kube-scheduler: what
        real nodes need (Deployments, DaemonSets, node lifecycle, scheduling).

        Node IPAM stays off (``--allocate-node-cidrs=false``): the lab plans each node's pod
        CIDRs before the node starts. ``node_grace``: how long a silent node stays Ready.
        """
        own_flags = {  # what each needs beyond its identity and a local, closed port
            "kube-controller-manager": [
                "--use-service-account-credentials",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                f"--cluster-signing-cert-file={self.ca_file}",
                f"--cluster-signing-key-file={self.pki / 'ca.key'}",
                "--allocate-node-cidrs=false",
                f"--node-monitor-grace-period={node_grace}",
                "--node-monitor-period=2s",
            ],
            "kube-scheduler": [],
        }
        made = []
        for component, name, cn in (
            ("kube-controller-manager", "kcm", "system:kube-controller-manager"),
            ("kube-scheduler", "sched", "system:kube-scheduler"),
        ):
            client_certificate(self.pki, name, cn)
            conf = self.write_kubeconfig(self.workdir / f"{name}.kubeconfig", cert=name, user=cn)
            argv = [
                str(self.binaries[component]),
                f"--kubeconfig={conf}",
                f"--authentication-kubeconfig={conf}",
                f"--authorization-kubeconfig={conf}",
                "--leader-elect=false",
                *own_flags[component],
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ]
            made.append(procs.Process(component, argv, log=self.workdir / f"{component}.log"))
            self.processes.append(made[-1].start())  # stopped with the rest, even if the next fails
        return made

    def stop_apiserver(self, *, crash: bool = False) -> None:
        """Stop kube-apiserver alone, as in an outage (``crash``: SIGKILL); etcd keeps running."""
        if self._apiserver is None:
            return
        if crash:
            self._apiserver.kill()
        else:
            self._apiserver.stop()

    def start_apiserver(self) -> None:
        """Start the stopped kube-apiserver again: same flags, port, certificates and etcd."""
        if self._apiserver is None:
            raise ControlPlaneError("start_apiserver: the control plane was never started")
        self._apiserver.start()
        procs.wait_until(
            "kube-apiserver /readyz", self.ready, timeout=90, interval=0.2, watch=[self._apiserver]
        )

    def start_controller_manager(self, extra: Sequence[str] = ()) -> procs.Process:
        """Endpoint(-slice) and service-account controllers: Pods work without a kubelet.
        ``extra`` names more controllers (``garbagecollector`` for ownerReferences)."""
        controllers = ",".join((*KCM_CONTROLLERS, *extra))
        kcm = procs.Process(
            "kube-controller-manager",
            [
                str(self.binaries["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                f"--controllers={controllers}",
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.ca_file}",
                "--bind-address=127.0.0.1",
                "--secure-port=0",
            ],
            log=self.workdir / "kube-controller-manager.log",
        )
        self.processes.append(kcm.start())
        return kcm

    def ready(self) -> bool:
        """/readyz, and the `default` namespace, which the API server makes a moment later."""
        return self._get("/readyz") and self._get("/api/v1/namespaces/default")

    def _get(self, path: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        req = urllib.request.Request(
            self.server() + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def compact_etcd(self) -> int:
        """Compact etcd up to its current revision (through its JSON gateway); return it.

        Watches from an older resourceVersion then fail with 410 Gone, as after a long outage.
        """

        def call(path: str, body: dict[str, object]) -> dict[str, object]:
            req = urllib.request.Request(
                f"{self.etcd_url}/v3/{path}", data=json.dumps(body).encode(), method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                result: dict[str, object] = json.loads(resp.read())
                return result

        header = call("kv/range", {"key": base64.b64encode(b"/").decode()})["header"]
        revision = int(header["revision"])  # type: ignore[index]
        call("kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def stop(self) -> None:
        """Stop every process this control plane started, newest first."""
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
        self._apiserver = None
