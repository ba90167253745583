"""Control-plane binaries (kube-apiserver, kube-proxy, ...): find, cache or build them (I/O).

Order of search for each binary, first hit wins:
1. a directory the user names (``LBCTL_ASSETS_DIR``, then ``KUBEBUILDER_ASSETS``, the envtest
   convention), so people with real release binaries never build anything;
2. the per-version cache under ``${XDG_CACHE_HOME:-~/.cache}/lbctl/``;
3. for etcd and kubectl, the system ``PATH`` (Debian's ``etcd-server``; any kubectl);
4. a build from Debian's ``kubernetes`` source package, which ships its ``vendor/`` tree and so
   builds offline with Debian's Go. The result goes into the cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The Debian source package we build from, pinned so the cache key means one exact tree.
KUBERNETES_SOURCE_VERSION = "1.20.5+really1.20.2-1.1+deb12u1"
KUBERNETES_VERSION = "v1.20.2"

BUILT = ("kube-apiserver", "kube-proxy", "kube-controller-manager")
FROM_PACKAGES = {"etcd": "etcd-server", "kubectl": "kubernetes-client"}
ALL = (*BUILT, *FROM_PACKAGES)

APT_PACKAGES = (
    "golang-go",
    "rsync",
    "jq",
    "dpkg-dev",
    "etcd-server",
    "iptables",
    "conntrack",
    "iproute2",
    "openssl",
)

Progress = Callable[[str], None]


class AssetError(RuntimeError):
    """A binary could not be found or built; the message names the failed step."""


def _stderr(msg: str) -> None:
    print(f"lbctl: {msg}", file=sys.stderr, flush=True)


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lbctl"


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    return cache_root(env) / f"kubernetes-{KUBERNETES_SOURCE_VERSION}" / "bin"


def user_dirs(env: Mapping[str, str] | None = None) -> list[Path]:
    env = os.environ if env is None else env
    return [Path(env[k]) for k in ("LBCTL_ASSETS_DIR", "KUBEBUILDER_ASSETS") if env.get(k)]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


@dataclass(frozen=True)
class Found:
    """Where each binary was found, and where from (``user``, ``cache``, ``system``)."""

    paths: dict[str, Path]
    origin: dict[str, str]


def locate(names: Iterable[str], env: Mapping[str, str] | None = None) -> Found:
    """Find what exists already, building nothing. Missing names are simply absent."""
    paths: dict[str, Path] = {}
    origin: dict[str, str] = {}
    for name in names:
        candidates = [(d / name, "user") for d in user_dirs(env)]
        candidates.append((cache_dir(env) / name, "cache"))
        if name in FROM_PACKAGES and (system := shutil.which(name)):
            candidates.append((Path(system), "system"))
        for path, where in candidates:
            if _executable(path):
                paths[name] = path
                origin[name] = where
                break
    return Found(paths, origin)


def ensure(
    names: Sequence[str] = ALL,
    *,
    env: Mapping[str, str] | None = None,
    progress: Progress = _stderr,
    workdir: Path | None = None,
) -> dict[str, Path]:
    """Return a path for every name, building or installing what is missing."""
    unknown = sorted(set(names) - set(ALL))
    if unknown:
        raise AssetError(f"unknown control-plane binaries: {', '.join(unknown)}")
    found = locate(names, env)
    missing = [n for n in names if n not in found.paths]
    for name in names:
        if name in found.paths:
            progress(f"{name}: using {found.origin[name]} binary {found.paths[name]}")
    if not missing:
        return found.paths
    if os.geteuid() != 0:
        raise AssetError(
            f"missing {', '.join(missing)} and not root: installing Debian packages and building "
            "Kubernetes needs root. Run as root once, or set LBCTL_ASSETS_DIR (or "
            "KUBEBUILDER_ASSETS) to a directory holding the binaries."
        )
    if any(n in FROM_PACKAGES for n in missing) or any(n in BUILT for n in missing):
        _install_packages(progress)
    if any(n in BUILT for n in missing):
        _build_kubernetes(progress, workdir=workdir, env=env)
    found = locate(names, env)
    still = [n for n in names if n not in found.paths]
    if still:
        raise AssetError(f"after install and build, still missing: {', '.join(still)}")
    for name in missing:
        progress(f"{name}: ready at {found.paths[name]}")
    return found.paths


# --- the slow path: apt and a Kubernetes build --------------------------------------------


def _run(
    step: str,
    argv: Sequence[str],
    *,
    progress: Progress,
    log: Path | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> None:
    """Run one step; on failure say which step failed and show the end of its output."""
    progress(f"{step}: {' '.join(argv)}")
    out = open(log, "ab") if log else subprocess.PIPE  # noqa: SIM115 (closed below)
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        done = threading.Event()

        def heartbeat() -> None:
            # The Kubernetes build is silent for minutes; say that it is alive.
            while not done.wait(30):
                progress(f"{step}: still running ({time.monotonic() - started:.0f} s)")

        beat = threading.Thread(target=heartbeat, daemon=True)
        beat.start()
        output, _ = proc.communicate()
        done.set()
    except OSError as exc:
        raise AssetError(f"step '{step}' could not start {argv[0]}: {exc}") from exc
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    if proc.returncode != 0:
        text = log.read_bytes()[-4000:] if log else (output or b"")[-4000:]
        where = f" (full log: {log})" if log else ""
        raise AssetError(
            f"step '{step}' failed with exit code {proc.returncode}{where}:\n"
            + text.decode(errors="replace")
        )
    progress(f"{step}: done in {time.monotonic() - started:.0f} s")


def _deb_src_file() -> Path:
    return Path("/etc/apt/sources.list.d/lbctl-src.sources")


def _enable_source_packages(progress: Progress) -> None:
    """Add a deb-src entry mirroring the system's Debian source, once."""
    target = _deb_src_file()
    if target.exists():
        return
    base = Path("/etc/apt/sources.list.d/debian.sources")
    uris, signed = "http://deb.debian.org/debian", "/usr/share/keyrings/debian-archive-keyring.gpg"
    if base.exists():
        for line in base.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Signed-By:"):
                signed = line.split(":", 1)[1].strip()
    progress(f"enable Debian source packages: writing {target}")
    target.write_text(
        f"Types: deb-src\nURIs: {uris}\nSuites: bookworm bookworm-updates\n"
        f"Components: main\nSigned-By: {signed}\n"
    )


def _install_packages(progress: Progress) -> None:
    _enable_source_packages(progress)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run("apt-get update", ["apt-get", "update"], progress=progress, env=env)
    packages = list(APT_PACKAGES)
    if not shutil.which("kubectl"):
        # Another package may own /usr/bin/kubectl already; any kubectl will do.
        packages.append("kubernetes-client")
    _run(
        "install Debian packages",
        ["apt-get", "install", "-y", "--no-install-recommends", *packages],
        progress=progress,
        env=env,
    )


def _build_kubernetes(
    progress: Progress, *, workdir: Path | None, env: Mapping[str, str] | None
) -> None:
    work = workdir or cache_root(env) / "build"
    work.mkdir(parents=True, exist_ok=True)
    log = work / "build.log"
    orig = f"kubernetes_{KUBERNETES_SOURCE_VERSION.split('-')[0]}.orig.tar.gz"
    if not (work / orig).exists():
        _run(
            "download Debian source package kubernetes",
            ["apt-get", "source", "--download-only", f"kubernetes={KUBERNETES_SOURCE_VERSION}"],
            progress=progress,
            cwd=work,
            log=log,
        )
    tree = work / f"kubernetes-{KUBERNETES_VERSION.lstrip('v')}"
    if not tree.exists():
        progress(f"unpack {orig}")
        try:
            with tarfile.open(work / orig) as tar:
                tar.extractall(work, filter="tar")
        except (OSError, tarfile.TarError) as exc:
            raise AssetError(f"step 'unpack {orig}' failed: {exc}") from exc
    # Kubernetes 1.20 builds in GOPATH mode; plain module builds trip over go.mod checks.
    gopath = tree / ".go"
    link = gopath / "src" / "k8s.io" / "kubernetes"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.is_symlink():
        link.symlink_to("../../..")
    build_env = {**os.environ, "GOPATH": str(gopath), "CGO_ENABLED": "0"}
    progress(
        "build kube-apiserver, kube-proxy, kube-controller-manager "
        "(about 6 minutes on 2 cores from a cold Go cache)"
    )
    _run(
        "build Kubernetes",
        ["make", f"WHAT={' '.join('cmd/' + n for n in BUILT)}"],
        progress=progress,
        cwd=tree,
        log=log,
        env=build_env,
    )
    dest = cache_dir(env)
    dest.mkdir(parents=True, exist_ok=True)
    for name in BUILT:
        built = tree / "_output" / "bin" / name
        if not _executable(built):
            raise AssetError(f"step 'build Kubernetes' produced no {name} (log: {log})")
        tmp = dest / f".{name}.tmp"
        shutil.copy2(built, tmp)
        tmp.replace(dest / name)  # atomic: a half-copied binary never looks cached
    progress(f"cached the binaries in {dest}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m lbctl.assets``: make sure every binary is there and print where."""
    try:
        paths = ensure(ALL)
    except AssetError as exc:
        _stderr(str(exc))
        return 1
    for name, path in paths.items():
        print(f"{name}\t{path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
