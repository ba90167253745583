"""Kubernetes, etcd and helm binaries for the lab and the tests: find, build or download them (I/O).

Order of search for each binary, first hit wins:

1. a directory the user names (``LBCTL_ASSETS_DIR``, then ``KUBEBUILDER_ASSETS``, the envtest
   convention), so people with real release binaries never build anything;
2. the per-version cache, ``${XDG_CACHE_HOME:-~/.cache}/lbctl/kubernetes-<version>/bin``,
   ``.../etcd-<version>/bin`` and ``.../helm-<version>/bin``;
3. otherwise it is made: by default **built** with ``go build`` from the ``k8s.io/kubernetes``,
   ``go.etcd.io/etcd/server/v3`` and ``helm.sh/helm/v3`` modules served by the Go module proxy;
   with ``download=True`` (``lbctl binaries --download``, never the default) the official release
   files are fetched and checked against their published SHA-512 (Kubernetes) and SHA-256 (etcd,
   helm) sums.

The control plane (:data:`ALL`) is what every test session needs; :data:`TOOLS` (helm) only the
tests of the Helm chart, so a session that does not ask for it never builds it. MetalLB's
controller and speaker (:func:`ensure_metallb`, for ``bench/peers.py``) are built the same way
from the ``go.universe.tf/metallb`` module, into ``.../metallb-<version>/bin``, never downloaded.

Whatever is made lands in the cache only whole: written beside it, checked, then renamed.
The versions are settings: ``LBCTL_KUBE_VERSION`` (default :data:`DEFAULT_KUBE_VERSION`),
``LBCTL_ETCD_VERSION`` (default :data:`DEFAULT_ETCD_VERSION`, the etcd that Kubernetes release
requires in its own ``go.mod``), ``LBCTL_HELM_VERSION`` (default :data:`DEFAULT_HELM_VERSION`) and
``LBCTL_METALLB_VERSION`` (default :data:`DEFAULT_METALLB_VERSION`).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_KUBE_VERSION = "v1.34.4"
# kubelets from 1.35 on refuse cgroup v1 (these machines have it); 1.34 only warns.
DEFAULT_ETCD_VERSION = "v3.6.4"  # what k8s.io/kubernetes v1.34.x requires (go.etcd.io/etcd/*)
DEFAULT_HELM_VERSION = "v3.22.0"  # the newest Helm 3 release (go list -m -versions helm.sh/helm/v3)
# MetalLB: the newest release that builds from the module proxy alone, exactly as its go.mod
# pins. The proxy serves v0.16.2 (the latest) but not the github.com/metallb/frr-k8s v0.0.27 it
# requires (403 "not available"); pinned to v0.0.21, the newest frr-k8s the proxy lists, v0.16.2
# does not compile (no AsPathPrependPrefixes). v0.15.2's frr-k8s v0.0.20 is served (though not
# listed by `go list -m -versions`).
DEFAULT_METALLB_VERSION = "v0.15.2"

KUBE_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
KUBERNETES = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "kubectl",
)
ETCD = "etcd"
ALL = (*KUBERNETES, ETCD)  # the control plane: every test session and the lab
HELM_MODULE = "helm.sh/helm/v3"
HELM = "helm"
TOOLS = (HELM,)  # built only when asked for (the chart's tests, ``lbctl binaries``)
KNOWN = (*ALL, *TOOLS)
METALLB_MODULE = "go.universe.tf/metallb"
METALLB = ("controller", "speaker")  # its packages go.universe.tf/metallb/controller, .../speaker

DOWNLOAD_URL = "https://dl.k8s.io"  # {base}/release/{version}/bin/linux/{arch}/{name}[.sha512]
ETCD_DOWNLOAD_URL = "https://github.com/etcd-io/etcd/releases/download"  # {base}/{v}/...tar.gz
HELM_DOWNLOAD_URL = "https://get.helm.sh"  # {base}/helm-{v}-linux-{arch}.tar.gz[.sha256sum]

_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")

Progress = Callable[[str], None]


class AssetError(RuntimeError):
    """A binary could not be found, built or downloaded; the message names the failed step."""


def _stderr(msg: str) -> None:
    print(f"lbctl: {msg}", file=sys.stderr, flush=True)


# --- settings and places (pure) -------------------------------------------------------------


def _version(env: Mapping[str, str], key: str, default: str) -> str:
    value = env.get(key) or default
    if not _VERSION.match(value):
        raise AssetError(f"{key}={value!r}: expected a release version such as {default}")
    return value


def kube_version(env: Mapping[str, str] | None = None) -> str:
    """``LBCTL_KUBE_VERSION`` or :data:`DEFAULT_KUBE_VERSION`, e.g. ``v1.34.4``."""
    return _version(os.environ if env is None else env, "LBCTL_KUBE_VERSION", DEFAULT_KUBE_VERSION)


def etcd_version(env: Mapping[str, str] | None = None) -> str:
    """``LBCTL_ETCD_VERSION`` or :data:`DEFAULT_ETCD_VERSION`, e.g. ``v3.6.4``."""
    return _version(os.environ if env is None else env, "LBCTL_ETCD_VERSION", DEFAULT_ETCD_VERSION)


def helm_version(env: Mapping[str, str] | None = None) -> str:
    """``LBCTL_HELM_VERSION`` or :data:`DEFAULT_HELM_VERSION`, e.g. ``v3.22.0`` (Helm 3 only)."""
    value = _version(os.environ if env is None else env, "LBCTL_HELM_VERSION", DEFAULT_HELM_VERSION)
    if not value.startswith("v3."):
        raise AssetError(f"LBCTL_HELM_VERSION={value!r}: the chart is tested with Helm 3 (v3.x.y)")
    return value


def metallb_version(env: Mapping[str, str] | None = None) -> str:
    """``LBCTL_METALLB_VERSION`` or :data:`DEFAULT_METALLB_VERSION`, e.g. ``v0.16.2``."""
    env = os.environ if env is None else env
    return _version(env, "LBCTL_METALLB_VERSION", DEFAULT_METALLB_VERSION)


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbctl"


def cache_dir(name: str, env: Mapping[str, str] | None = None) -> Path:
    """The cache folder for binary ``name``, keyed by the version it comes from."""
    if name == ETCD:
        return cache_root(env) / f"etcd-{etcd_version(env)}" / "bin"
    if name == HELM:
        return cache_root(env) / f"helm-{helm_version(env)}" / "bin"
    return cache_root(env) / f"kubernetes-{kube_version(env)}" / "bin"


def metallb_dir(env: Mapping[str, str] | None = None) -> Path:
    """The cache folder for MetalLB's binaries (its own: they are named controller and speaker)."""
    return cache_root(env) / f"metallb-{metallb_version(env)}" / "bin"


def user_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    return [Path(env[k]) for k in ("LBCTL_ASSETS_DIR", "KUBEBUILDER_ASSETS") if env.get(k)]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class Found:
    """Where each binary was found, and where from (``user`` or ``cache``)."""

    paths: dict[str, Path]
    origin: dict[str, str]


def locate(names: Iterable[str], env: Mapping[str, str] | None = None) -> Found:
    """Find what exists already, making nothing. Missing names are simply absent."""
    paths: dict[str, Path] = {}
    origin: dict[str, str] = {}
    for name in names:
        candidates = [(d / name, "user") for d in user_dirs(env)]
        candidates.append((cache_dir(name, env) / name, "cache"))
        for path, where in candidates:
            if _executable(path):
                paths[name] = path
                origin[name] = where
                break
    return Found(paths, origin)


# --- the build module (pure) ----------------------------------------------------------------


def staging_modules(go_mod: str) -> list[str]:
    """The modules that ``k8s.io/kubernetes``'s go.mod replaces with its own ``./staging`` folders.

    Those replaces only work inside its repository; a module that depends on it must pin each
    to the published tag instead. Read from the served go.mod, so the list is never stale.
    """
    found = re.findall(r"^\s*(?:replace\s+)?(\S+)\s+=>\s+\./staging/\S+\s*$", go_mod, re.M)
    return sorted(set(found))


def staging_tag(kube: str) -> str:
    """``v1.34.4`` → ``v0.34.4``: the tag that staging modules get for a Kubernetes release."""
    match = _VERSION.match(kube)
    if not match:
        raise AssetError(f"not a Kubernetes release version: {kube!r}")
    return f"v0.{match[2]}.{match[3]}"


def build_go_mod(
    module: str, require: Mapping[str, str], replace: Mapping[str, str] | None = None
) -> str:
    """The go.mod of a build module that requires ``require`` (module → version), with every
    module in ``replace`` pinned to the given version."""
    lines = [f"module {module}", "", "go 1.24.0", ""]
    lines += [f"require {mod} {version}" for mod, version in sorted(require.items())]
    if replace:
        lines.append("")
        lines += [f"replace {mod} => {mod} {version}" for mod, version in sorted(replace.items())]
    return "\n".join(lines) + "\n"


def version_ldflags(kube: str) -> str:
    """``-X`` flags that give the binaries their version (else ``kubectl version`` says v0.0.0)."""
    match = _VERSION.match(kube)
    if not match:
        raise AssetError(f"not a Kubernetes release version: {kube!r}")
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={kube}",
            f"-X {package}.gitMajor={match[1]}",
            f"-X {package}.gitMinor={match[2]}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def required_version(go_mod: str, module: str) -> str | None:
    """The version of ``module`` that a go.mod requires, or None."""
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", go_mod, re.M)
    return match[1] if match else None


def helm_ldflags(helm: str, client_go: str | None) -> str:
    """What Helm's Makefile passes: its version, and the Kubernetes minor its client-go speaks
    (the default ``.Capabilities.KubeVersion`` of ``helm template`` and ``helm lint``)."""
    flags = ["-s", "-w", f"-X {HELM_MODULE}/internal/version.version={helm}"]
    flags.append(f"-X {HELM_MODULE}/internal/version.gitTreeState=clean")
    match = _VERSION.match(client_go or "")
    if match:  # client-go v0.37.0 goes with Kubernetes 1.37
        for package in ("pkg/lint/rules", "pkg/chartutil"):
            flags.append(f"-X {HELM_MODULE}/{package}.k8sVersionMajor=1")
            flags.append(f"-X {HELM_MODULE}/{package}.k8sVersionMinor={match[2]}")
    return " ".join(flags)


_UNSERVED = re.compile(
    r"(?P<module>[\w.\-/~]+)@(?P<version>v[\w.\-+]+): reading \S+: (?:403|404|410)\b"
)


def unserved_module(output: str) -> tuple[str, str] | None:
    """The ``(module, version)`` a failed ``go build`` could not fetch because the module proxy
    does not serve that version (403/404/410 on its ``.zip`` or ``.mod``), or None (pure)."""
    match = _UNSERVED.search(output)
    return (match["module"], match["version"]) if match else None


def _release_key(version: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(version)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def closest_served(required: str, served: Iterable[str]) -> str | None:
    """The served release to pin when ``required`` is not served (pure): the oldest one above
    it (what Go's minimal version selection would accept), else the newest one below it; None
    when the proxy serves no release at all."""
    want = _release_key(required)
    releases = sorted((k, v) for v in served if (k := _release_key(v)) is not None)
    if want is None or not releases:
        return releases[-1][1] if releases else None
    above = [v for k, v in releases if k > want]
    below = [v for k, v in releases if k < want]
    return above[0] if above else below[-1] if below else None


# --- entry point ----------------------------------------------------------------------------


def ensure(
    names: Sequence[str] = ALL,
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress = _stderr,
    download: bool = False,
) -> dict[str, Path]:
    """Return a path for every name, building (or with ``download``, fetching) what is missing.

    Raises :class:`AssetError` naming the failed step and showing the end of its output.
    """
    env = dict(os.environ if env is None else env)
    unknown = sorted(set(names) - set(KNOWN))
    if unknown:
        raise AssetError(f"unknown binaries: {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    found = locate(names, env)
    for name in names:
        if name in found.paths:
            progress(f"{name}: using {found.origin[name]} binary {found.paths[name]}")
    missing = [n for n in names if n not in found.paths]
    if not missing:
        return found.paths
    kube = [n for n in missing if n in KUBERNETES]
    if download:
        fetch = Downloader(env=env, progress=progress)
        if kube:
            fetch.kubernetes(kube)
        if ETCD in missing:
            fetch.etcd()
        if HELM in missing:
            fetch.helm()
    else:
        build = Builder(env=env, progress=progress)
        if kube:
            build.kubernetes()
        if ETCD in missing:
            build.etcd()
        if HELM in missing:
            build.helm()
    found = locate(names, env)
    still = [n for n in names if n not in found.paths]
    if still:
        raise AssetError(f"after the build, still missing: {', '.join(still)}")
    for name in missing:
        progress(f"{name}: ready at {found.paths[name]}")
    return found.paths


def ensure_metallb(
    *, env: Mapping[str, str] | None = None, progress: Progress = _stderr
) -> dict[str, Path]:
    """MetalLB's ``controller`` and ``speaker`` (:func:`metallb_version`): from the cache, else
    built from the Go module proxy (never downloaded otherwise). Raises :class:`AssetError`."""
    env = dict(os.environ if env is None else env)
    folder = metallb_dir(env)
    paths = {name: folder / name for name in METALLB}
    if not all(_executable(p) for p in paths.values()):
        Builder(env=env, progress=progress).metallb()
    for name, path in paths.items():
        if not _executable(path):
            raise AssetError(f"after the build, MetalLB's {name} is still missing at {path}")
        progress(f"MetalLB {name}: {path}")
    return paths


def module_dir(go: str, module: str, version: str) -> Path:
    """The source folder of ``module@version`` in the Go module cache (downloaded from the
    module proxy if not there yet). Raises :class:`AssetError`."""
    got = subprocess.run(
        [go, "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=tempfile.gettempdir(),  # outside any module
    )
    try:
        found = json.loads(got.stdout)
        return Path(found["Dir"])
    except (ValueError, KeyError) as exc:
        detail = (got.stderr or got.stdout).strip()[-2000:]
        raise AssetError(f"step 'go mod download {module}@{version}' failed: {detail}") from exc


def _install(files: Mapping[str, Path], dest: Path, progress: Progress) -> None:
    """Copy checked files into the cache; each appears whole (rename) or not at all."""
    dest.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        tmp = dest / f".{name}.tmp"
        shutil.copy2(source, tmp)
        tmp.chmod(0o755)
        tmp.replace(dest / name)
    progress(f"cached {', '.join(files)} in {dest}")


# --- building with Go ------------------------------------------------------------------------


def _run(
    step: str,
    argv: Sequence[str],
    *,
    progress: Progress,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run one step, its output appended to ``log``; on failure name the step and show the tail.

    Returns the step's standard output.
    """
    progress(f"{step}: {' '.join(argv)}")
    started = time.monotonic()
    done = threading.Event()

    def heartbeat() -> None:
        # A Kubernetes build is silent for minutes; say that it is alive.
        while not done.wait(30):
            progress(f"{step}: still running ({time.monotonic() - started:.0f} s)")

    threading.Thread(target=heartbeat, daemon=True).start()
    try:
        with open(log, "ab") as err:
            proc = subprocess.run(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                check=False,
            )
    except OSError as exc:
        raise AssetError(f"step '{step}' could not start {argv[0]}: {exc}") from exc
    finally:
        done.set()
    if proc.returncode != 0:
        tail = log.read_bytes()[-4000:].decode(errors="replace")
        raise AssetError(
            f"step '{step}' failed with exit code {proc.returncode} (full log: {log}):\n{tail}"
        )
    progress(f"{step}: done in {time.monotonic() - started:.0f} s")
    return proc.stdout.decode(errors="replace")


USUAL_GO = Path("/usr/local/go/bin/go")  # where Go's own installer puts it


def find_go(env: Mapping[str, str], usual: Path = USUAL_GO) -> str:
    """The ``go`` command: on ``PATH``, else at ``usual``. Raises :class:`AssetError` if absent."""
    found = shutil.which("go", path=env.get("PATH")) or (str(usual) if _executable(usual) else None)
    if not found:
        raise AssetError(
            "step 'find go' failed: no go command (Go >= 1.21 fetches the toolchain Kubernetes "
            "needs by itself). Install Go, or set LBCTL_ASSETS_DIR to a directory holding the "
            "binaries, or run `lbctl binaries --download`."
        )
    return found


class Builder:
    """``go build`` of Kubernetes and etcd from the Go module proxy, into the cache."""

    def __init__(self, *, env: Mapping[str, str], progress: Progress) -> None:
        self.env = env
        self.progress = progress
        self.go = find_go(env)
        self.work = cache_root(env) / "build"
        self.work.mkdir(parents=True, exist_ok=True)
        self.log = self.work / "build.log"
        self.go_env = {
            **env,
            "CGO_ENABLED": "0",
            "GOFLAGS": "-mod=mod",
            "GOTOOLCHAIN": env.get("GOTOOLCHAIN", "auto"),
            "GOWORK": "off",
        }

    def _served_go_mod(self, module: str, version: str) -> str:
        out = _run(
            f"fetch {module}@{version} from the Go module proxy",
            [self.go, "mod", "download", "-json", f"{module}@{version}"],
            progress=self.progress,
            log=self.log,
            cwd=self.work,
            env=self.go_env,
        )
        try:
            return Path(json.loads(out)["GoMod"]).read_text()
        except (ValueError, KeyError, OSError) as exc:
            raise AssetError(f"step 'read the go.mod of {module}@{version}' failed: {exc}") from exc

    def _build(
        self, what: str, folder: Path, go_mod: str, packages: Sequence[str], ldflags: str
    ) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "go.mod").write_text(go_mod)
        out = folder / "out"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        _run(
            f"build {what}",
            [self.go, "build", "-trimpath", "-ldflags", ldflags, "-o", f"{out}/", *packages],
            progress=self.progress,
            log=self.log,
            cwd=folder,
            env=self.go_env,
        )
        return out

    def kubernetes(self) -> None:
        version = kube_version(self.env)
        go_mod = self._served_go_mod(KUBE_MODULE, version)
        staging = staging_modules(go_mod)
        if not staging:
            raise AssetError(f"step 'read staging modules' found none in {KUBE_MODULE}'s go.mod")
        tag = staging_tag(version)
        self.progress(
            f"build {', '.join(KUBERNETES)} {version} ({len(staging)} staging modules at {tag}; "
            "about 10 minutes on 2 cores from a cold Go cache, seconds with a warm one)"
        )
        out = self._build(
            f"Kubernetes {version}",
            self.work / f"kubernetes-{version}",
            build_go_mod(
                "lbctl.local/build/kubernetes",
                {KUBE_MODULE: version},
                dict.fromkeys(staging, tag),
            ),
            [f"{KUBE_MODULE}/cmd/{name}" for name in KUBERNETES],
            version_ldflags(version),
        )
        _install(
            {n: out / n for n in KUBERNETES}, cache_dir(KUBERNETES[0], self.env), self.progress
        )

    def etcd(self) -> None:
        version = etcd_version(self.env)
        out = self._build(
            f"etcd {version}",
            self.work / f"etcd-{version}",
            build_go_mod("lbctl.local/build/etcd", {ETCD_MODULE: version}),
            [ETCD_MODULE],
            "-s -w",
        )
        # Go names the binary after the module path ("server"); there is only the one.
        built = [p for p in out.iterdir() if _executable(p)]
        if len(built) != 1:
            raise AssetError(f"step 'build etcd {version}' left {len(built)} binaries in {out}")
        _install({ETCD: built[0]}, cache_dir(ETCD, self.env), self.progress)

    def helm(self) -> None:
        version = helm_version(self.env)
        served = self._served_go_mod(HELM_MODULE, version)
        self.progress(f"build helm {version} (a few minutes on 2 cores from a cold Go cache)")
        out = self._build(
            f"helm {version}",
            self.work / f"helm-{version}",
            build_go_mod("lbctl.local/build/helm", {HELM_MODULE: version}),
            [f"{HELM_MODULE}/cmd/helm"],
            helm_ldflags(version, required_version(served, "k8s.io/client-go")),
        )
        _install({HELM: out / HELM}, cache_dir(HELM, self.env), self.progress)

    def metallb(self) -> None:
        """MetalLB's controller and speaker, static (CGO off) as its Dockerfiles build them.

        A dependency version the proxy does not serve (seen: MetalLB v0.16.2 requires
        ``github.com/metallb/frr-k8s`` v0.0.27, the proxy answers 403) is pinned to the closest
        version it lists, said in a progress line and in ``build.json`` beside the binaries;
        if MetalLB then does not compile (v0.16.2 with v0.0.21), the error says so.
        """
        version = metallb_version(self.env)
        self.progress(f"build MetalLB {version} controller and speaker (a few minutes cold)")
        pins: dict[str, str] = {}
        for _ in range(5):  # one more pin per attempt; a handful at most
            try:
                out = self._build(
                    f"MetalLB {version}",
                    self.work / f"metallb-{version}",
                    build_go_mod("lbctl.local/build/metallb", {METALLB_MODULE: version}, pins),
                    [f"{METALLB_MODULE}/{name}" for name in METALLB],
                    "-s -w",
                )
                break
            except AssetError as exc:
                missing = unserved_module(str(exc))
                if missing is None and pins:
                    raise AssetError(
                        f"MetalLB {version} does not build with {pins} (pinned: the proxy does "
                        f"not serve what it requires); try an older LBCTL_METALLB_VERSION: {exc}"
                    ) from exc
                if missing is None or missing[0] in pins:
                    raise
                module, wanted = missing
                pin = closest_served(wanted, self._served_versions(module))
                if pin is None:
                    raise AssetError(
                        f"the Go module proxy serves no version of {module} (MetalLB {version} "
                        f"requires {wanted}): {exc}"
                    ) from exc
                self.progress(
                    f"the module proxy does not serve {module}@{wanted}: pinning {pin}, the "
                    "closest version it serves"
                )
                pins[module] = pin
        else:
            raise AssetError(f"step 'build MetalLB {version}' gave up after pinning {pins}")
        dest = metallb_dir(self.env)
        _install({name: out / name for name in METALLB}, dest, self.progress)
        (dest.parent / "build.json").write_text(
            json.dumps({"module": METALLB_MODULE, "version": version, "pinned": pins}, indent=2)
            + "\n"
        )

    def _served_versions(self, module: str) -> list[str]:
        out = _run(
            f"list the versions of {module} on the Go module proxy",
            [self.go, "list", "-m", "-versions", module],
            progress=self.progress,
            log=self.log,
            cwd=self.work,
            env=self.go_env,
        )
        return out.split()[1:]


# --- downloading release files ---------------------------------------------------------------


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def expected_digest(sums: str, filename: str) -> str:
    """The hex digest for ``filename`` in a sums file: a bare digest (Kubernetes' ``.sha512``)
    or ``<digest>  <name>`` lines (``SHA256SUMS``). Raises :class:`AssetError` if absent."""
    lines = [line.split() for line in sums.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) == 1:
        return lines[0][0].lower()
    for parts in lines:
        if len(parts) >= 2 and parts[-1].lstrip("*") == filename:
            return parts[0].lower()
    raise AssetError(f"no checksum for {filename} in the published sums")


class Downloader:
    """Official release files, each checked against its published checksum before it is kept."""

    def __init__(self, *, env: Mapping[str, str], progress: Progress) -> None:
        self.env = env
        self.progress = progress

    def _get(self, url: str) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=60) as resp:
                data: bytes = resp.read()
                length = resp.headers.get("Content-Length")
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise AssetError(f"step 'download {url}' failed: {exc}") from exc
        if length is not None and length.isdigit() and int(length) != len(data):
            raise AssetError(f"step 'download {url}' failed: {len(data)} of {length} bytes")
        return data

    def _checked(self, url: str, sums_url: str, filename: str, algorithm: str) -> bytes:
        data = self._get(url)
        want = expected_digest(self._get(sums_url).decode(errors="replace"), filename)
        got = hashlib.new(algorithm, data).hexdigest()
        if got != want:
            raise AssetError(
                f"step 'verify {filename}' failed: {algorithm} {got} does not match the "
                f"published {want}; nothing was cached"
            )
        self.progress(f"{filename}: {algorithm} checked ({len(data)} bytes)")
        return data

    def kubernetes(self, names: Sequence[str]) -> None:
        version = kube_version(self.env)
        base = self.env.get("LBCTL_DOWNLOAD_URL") or DOWNLOAD_URL
        folder = f"{base.rstrip('/')}/release/{version}/bin/linux/{_arch()}"
        with tempfile.TemporaryDirectory(prefix="lbctl-download-") as tmp:
            files = {}
            for name in names:
                data = self._checked(f"{folder}/{name}", f"{folder}/{name}.sha512", name, "sha512")
                files[name] = Path(tmp) / name
                files[name].write_bytes(data)
            _install(files, cache_dir(names[0], self.env), self.progress)

    def _from_tarball(self, url: str, sums_url: str, member: str, name: str) -> None:
        filename = url.rsplit("/", 1)[1]
        data = self._checked(url, sums_url, filename, "sha256")
        try:
            with tarfile.open(fileobj=io.BytesIO(data)) as tar:
                found = tar.extractfile(member)
                binary = found.read() if found else None
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise AssetError(f"step 'unpack {filename}' failed: {exc}") from exc
        if not binary:
            raise AssetError(f"step 'unpack {filename}' failed: no {member} inside")
        with tempfile.TemporaryDirectory(prefix="lbctl-download-") as tmp:
            (Path(tmp) / name).write_bytes(binary)
            _install({name: Path(tmp) / name}, cache_dir(name, self.env), self.progress)

    def etcd(self) -> None:
        version = etcd_version(self.env)
        base = (self.env.get("LBCTL_ETCD_DOWNLOAD_URL") or ETCD_DOWNLOAD_URL).rstrip("/")
        stem = f"etcd-{version}-linux-{_arch()}"
        self._from_tarball(
            f"{base}/{version}/{stem}.tar.gz",
            f"{base}/{version}/SHA256SUMS",
            f"{stem}/{ETCD}",
            ETCD,
        )

    def helm(self) -> None:
        base = (self.env.get("LBCTL_HELM_DOWNLOAD_URL") or HELM_DOWNLOAD_URL).rstrip("/")
        url = f"{base}/helm-{helm_version(self.env)}-linux-{_arch()}.tar.gz"
        self._from_tarball(url, f"{url}.sha256sum", f"linux-{_arch()}/{HELM}", HELM)


def main(*, download: bool = False) -> int:
    """``lbctl binaries``: make sure every binary (the control plane and helm) is there and
    print where."""
    try:
        paths = ensure(KNOWN, download=download)
    except AssetError as exc:
        _stderr(str(exc))
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0
