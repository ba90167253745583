"""The lab's container images, made with no registry and cached by content (I/O, root).

Three images, each an archive that ``ctr images import`` takes:

- **pause**, the sandbox image: the Kubernetes tree's own ``pause.c`` (from the module cache
  the binaries were built from), linked statically, named as containerd's ``sandbox_image``;
- **base**, the image the Dockerfile's ``FROM`` names, made locally with ``mmdebstrap`` from
  Debian packages (Python 3, venv, pip) and tagged with exactly that name;
- **release**, the project's own ``Dockerfile``, unchanged, built by ``buildah`` on that base:
  the same recipe a user with a registry runs with ``docker build``.

Each archive is stored under ``<cache>/images/`` by a key hashed from everything that goes
into it (the pause source, the base recipe, the Dockerfile and the files it copies, the base's
key), so a second run with unchanged sources builds nothing. ``static_binary`` packs any static
binary alone in an image the same way as pause (MetalLB's controller and speaker, ``metallb``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lbctl.lab import assets, oci

PAUSE_VERSION = "3.10.1"  # kubeadm 1.34's PauseVersion and build/pause/Makefile's TAG
PAUSE_IMAGE = f"registry.k8s.io/pause:{PAUSE_VERSION}"
KUBERNETES_MODULE = "k8s.io/kubernetes"

# The base image recipe: Debian bookworm with Python 3.11, venv and pip, and a `python` command,
# like the python:*-slim-bookworm images (which carry their own CPython build; ours is Debian's).
BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
BASE_MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
BASE_ENV = (
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
)
# The builder machine's trust, bound into the build's RUN steps only (never into the image):
# behind a TLS-inspecting proxy pip needs the host's CA bundle to reach PyPI.
HOST_TRUST = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")

Say = Callable[[str], None]


class ImageError(RuntimeError):
    """An image could not be made; the message names the step and ends with its output."""


# --- pure: what the Dockerfile and deploy/ say ---


def _instructions(dockerfile: str) -> Iterator[tuple[str, list[str]]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined (pure)."""
    joined = re.sub(r"\\\n", " ", dockerfile)
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        yield word.upper(), shlex.split(rest)


def dockerfile_bases(dockerfile: str) -> list[str]:
    """The images the Dockerfile's stages start from, stage names excluded, in order (pure)."""
    stages: set[str] = set()
    bases: list[str] = []
    for word, args in _instructions(dockerfile):
        if word != "FROM":
            continue
        args = [a for a in args if not a.startswith("--")]
        image = args[0]
        if image.lower() not in stages and image not in bases:
            bases.append(image)
        if len(args) >= 3 and args[1].upper() == "AS":
            stages.add(args[2].lower())
    return bases


def dockerfile_copy_sources(dockerfile: str) -> list[str]:
    """The context paths the Dockerfile COPYs or ADDs (not ``--from`` a stage), in order (pure)."""
    sources: list[str] = []
    for word, args in _instructions(dockerfile):
        if word not in ("COPY", "ADD") or any(a.startswith("--from") for a in args):
            continue
        for src in [a for a in args if not a.startswith("--")][:-1]:
            if src not in sources:
                sources.append(src)
    return sources


def deploy_image(deploy_dir: Path) -> str:
    """The one image every workload in ``deploy/`` runs (pure but for reading the files)."""
    found: set[str] = set()
    for path in sorted(deploy_dir.glob("*.yaml")):
        found.update(re.findall(r"^\s*image:\s*(\S+)\s*$", path.read_text(), re.MULTILINE))
    if len(found) != 1:
        raise ImageError(f"{deploy_dir}: expected one image in the manifests, found {found}")
    return found.pop()


def content_key(parts: Iterable[tuple[str, bytes]]) -> str:
    """A short hex key over named byte strings, order-independent (pure)."""
    h = hashlib.sha256()
    for name, data in sorted(parts):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def base_recipe(name: str) -> dict[str, object]:
    """What the base image ``name`` is made of; its key is the cache key (pure)."""
    return {
        "name": oci.normalize(name),
        "suite": BASE_SUITE,
        "variant": "minbase",
        "packages": list(BASE_PACKAGES),
        "mirrors": list(BASE_MIRRORS),
        "env": list(BASE_ENV),
    }


def check_base_name(name: str) -> None:
    """The lab can make Debian-bookworm Python bases only; say so for anything else (pure)."""
    full = oci.normalize(name)
    if not re.fullmatch(r"docker\.io/library/python:3\.\d+(\.\d+)?-slim-bookworm", full):
        raise ImageError(
            f"the Dockerfile starts FROM {name}: the lab can only make python:3.X-slim-bookworm "
            "bases from Debian packages (with a registry, pull the real one instead)"
        )


# --- I/O ---


@dataclass(frozen=True)
class Image:
    name: str  # fully qualified, as containerd stores it and the kubelet asks for it
    archive: Path
    key: str
    seconds: float | None  # build time, None when it came from the cache


def _run(step: str, argv: Sequence[str], *, log: Path, env: dict[str, str] | None = None) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {shlex.join(argv)}\n".encode())
        out.flush()
        got = subprocess.run(
            list(argv), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    if got.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise ImageError(f"{step} failed (exit {got.returncode}); log {log}:\n{tail}")


def _need(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ImageError(f"{tool} not found: apt-get install {package}")
    return path


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """One builder at a time per cache (two labs starting together build once)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Builder:
    """Makes (or finds in the cache) the pause, base and release images."""

    def __init__(self, cache: Path, say: Say = print) -> None:
        self.dir = cache / "images"
        self.say = say

    def _cached(self, kind: str, key: str, suffix: str) -> Path:
        return self.dir / f"{kind}-{key}.{suffix}"

    def _prune(self, kind: str, keep: int = 2) -> None:
        """Keep the newest ``keep`` archives of a kind (each release build leaves 300 MB)."""
        old = sorted(self.dir.glob(f"{kind}-*.tar"), key=lambda p: p.stat().st_mtime)
        for path in old[:-keep]:
            path.unlink(missing_ok=True)

    def _made(
        self,
        name: str,
        kind: str,
        key: str,
        suffix: str,
        make: Callable[[Path, Path], None],
        *,
        prune: bool = True,
    ) -> Image:
        """Image ``name`` from the cache (``seconds`` None), or made by ``make(archive, work
        dir)`` under the cache's lock, timed; ``prune``: ``kind``'s older archives go after."""
        out = self._cached(kind, key, suffix)
        if out.exists():
            return Image(name, out, key, None)
        with _locked(self.dir), tempfile.TemporaryDirectory(dir=self.dir) as tmp:
            if out.exists():  # another lab made it while we waited for the lock
                return Image(name, out, key, None)
            start = time.monotonic()
            make(out, Path(tmp))
            seconds = time.monotonic() - start
            if prune:
                self._prune(kind)
        return Image(name, out, key, seconds)

    def pause(self, kubernetes_version: str, go: str = "go") -> Image:
        source = pause_source(kubernetes_version, go)
        flags = ["-Os", "-Wall", "-Werror", "-static", f"-DVERSION=v{PAUSE_VERSION}-lbctl"]
        key = content_key([("pause.c", source.read_bytes()), ("flags", " ".join(flags).encode())])

        def make(out: Path, work: Path) -> None:
            gcc = _need("gcc", "gcc")
            _run("gcc pause.c", [gcc, *flags, "-o", str(work / "pause"), str(source)],
                 log=self.dir / "pause.log")  # fmt: skip
            _pack_binary(out, PAUSE_IMAGE, work / "pause", work, user="65535:65535")

        image = self._made(PAUSE_IMAGE, "pause", key, "oci.tar", make, prune=False)  # 1 MB each
        if image.seconds is not None:
            self.say(
                f"pause image {PAUSE_IMAGE}: built from {source.name} in {image.seconds:.1f} s"
            )
        return image

    def static_binary(self, name: str, binary: Path) -> Image:
        """An image of one static binary, ``/<its file name>`` as the entrypoint, run as root
        unless the Pod says otherwise: what ``FROM scratch`` (or distroless/static) and one
        ``COPY`` make. Cached by the binary's bytes and the name."""
        full = oci.normalize(name)
        key = content_key([("binary", binary.read_bytes()), ("name", full.encode())])

        def make(out: Path, work: Path) -> None:
            _pack_binary(out, full, binary, work)

        image = self._made(full, f"static-{binary.name}", key, "oci.tar", make)
        if image.seconds is not None:
            self.say(f"image {full}: {binary.name} packed in {image.seconds:.1f} s")
        return image

    def base(self, name: str) -> Image:
        check_base_name(name)
        recipe = base_recipe(name)
        key = content_key([("recipe", json.dumps(recipe, sort_keys=True).encode())])
        full = oci.normalize(name)

        def make(out: Path, work: Path) -> None:
            mmdebstrap = _need("mmdebstrap", "mmdebstrap")
            self.say(f"base image {full}: mmdebstrap {BASE_SUITE} (about a minute)")
            rootfs = work / "rootfs.tar"
            _run(
                "mmdebstrap",
                [
                    mmdebstrap,
                    "--variant=minbase",
                    "--include=" + ",".join(BASE_PACKAGES),
                    "--aptopt=APT::Install-Recommends false",
                    "--dpkgopt=path-exclude=/usr/share/doc/*",
                    "--dpkgopt=path-exclude=/usr/share/man/*",
                    "--dpkgopt=path-exclude=/usr/share/locale/*",
                    '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*',
                    "--skip=output/dev",  # no device nodes in a layer: the runtime makes /dev
                    BASE_SUITE,
                    str(rootfs),
                    *BASE_MIRRORS,
                ],
                log=self.dir / "base.log",
            )
            config = oci.image_config(entrypoint=[], env=BASE_ENV, cmd=["python3"])
            oci.write_archive(out, name=full, layers=[rootfs], config=config)

        image = self._made(full, "base", key, "oci.tar", make)
        if image.seconds is not None:
            self.say(f"base image {full}: made in {image.seconds:.0f} s")
        return image

    def release(self, source: Path, name: str) -> Image:
        """Build ``source``'s Dockerfile, unchanged, as ``name`` (on a base made here)."""
        dockerfile = (source / "Dockerfile").read_text()
        bases = dockerfile_bases(dockerfile)
        if len(bases) != 1:
            raise ImageError(f"expected one base image in the Dockerfile, found {bases}")
        base = self.base(bases[0])
        files = context_files(source, dockerfile_copy_sources(dockerfile))
        key = content_key(
            [("Dockerfile", dockerfile.encode()), ("base", base.key.encode()),
             ("name", name.encode()),
             *((str(rel), (source / rel).read_bytes()) for rel in files)]
        )  # fmt: skip
        full = oci.normalize(name)

        def make(out: Path, work: Path) -> None:
            buildah = _need("buildah", "buildah")
            self.say(f"release image {full}: buildah bud of the Dockerfile (about a minute)")
            context = work / "context"
            for rel in ["Dockerfile", *map(str, files)]:
                (context / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / rel, context / rel)
            store = [
                buildah,
                "--storage-driver=vfs",
                f"--root={work / 'storage'}",
                f"--runroot={work / 'run'}",
            ]
            # Everything buildah writes stays in the work dir: its big temporary files, its CNI
            # lock (else /etc/cni/net.d/cni.lock) and runc's state (else /run/runc).
            conf = work / "containers.conf"
            conf.write_text(f'[network]\nnetwork_config_dir = "{work / "cni"}"\n')
            env = {**os.environ, "TMPDIR": str(work), "CONTAINERS_CONF": str(conf)}
            log = self.dir / "release.log"
            _run("buildah pull (base)", [*store, "pull", f"oci-archive:{base.archive}"],
                 log=log, env=env)  # fmt: skip
            trust = [f"--volume={p}:{p}:ro" for p in HOST_TRUST if Path(p).is_file()]
            _run(
                "buildah bud",
                [*store, "bud", "--network=host", "--pull=false", "--layers=false", *trust,
                 f"--runtime-flag=root={work / 'runc'}",
                 f"--tag={full}", str(context)],
                log=log,
                env=env,
            )  # fmt: skip
            tmp_out = out.with_name(out.name + ".tmp")
            _run("buildah push", [*store, "push", full, f"docker-archive:{tmp_out}:{full}"],
                 log=log, env=env)  # fmt: skip
            tmp_out.replace(out)

        image = self._made(full, "release", key, "docker.tar", make)
        if image.seconds is not None:
            self.say(f"release image {full}: built in {image.seconds:.0f} s")
        return image


def _pack_binary(out: Path, name: str, binary: Path, work: Path, *, user: str = "") -> None:
    """One-layer OCI archive holding ``binary`` at ``/<its name>``, its entrypoint."""
    layer = work / "layer.tar"
    oci.single_file_layer(layer, binary.name, binary.read_bytes())
    config = oci.image_config(entrypoint=[f"/{binary.name}"], user=user)
    oci.write_archive(out, name=name, layers=[layer], config=config)


def context_files(source: Path, sources: Sequence[str]) -> list[Path]:
    """Every file under the COPY sources, relative to ``source``, without bytecode caches."""
    files: list[Path] = []
    for src in sources:
        path = source / src
        if path.is_file():
            files.append(Path(src))
        elif path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file() and "__pycache__" not in sub.parts and sub.suffix != ".pyc":
                    files.append(sub.relative_to(source))
        else:
            raise ImageError(f"the Dockerfile copies {src}, which is not in {source}")
    return files


def pause_source(kubernetes_version: str, go: str = "go") -> Path:
    """``build/pause/linux/pause.c`` of the Kubernetes module (downloaded if not cached)."""
    try:
        folder = assets.module_dir(go, KUBERNETES_MODULE, kubernetes_version)
    except assets.AssetError as exc:
        raise ImageError(str(exc)) from None
    path = folder / "build" / "pause" / "linux" / "pause.c"
    if not path.is_file():
        raise ImageError(f"{path} not found in the {KUBERNETES_MODULE} module")
    return path


def import_image(ctr_address: Path, image: Image, *, log: Path) -> None:
    """``ctr -n k8s.io images import`` into one node's containerd (the kubelet's namespace)."""
    ctr = _need("ctr", "containerd")
    _run(
        f"import {image.name}",
        [ctr, f"--address={ctr_address}", "--namespace=k8s.io", "images", "import",
         str(image.archive)],
        log=log,
    )  # fmt: skip


def tag_image(ctr_address: Path, source: str, target: str, *, log: Path) -> None:
    """A second name for an image a node already has (a rolling update's "new" tag)."""
    ctr = _need("ctr", "containerd")
    _run(
        f"tag {target}",
        [ctr, f"--address={ctr_address}", "--namespace=k8s.io", "images", "tag", "--force",
         oci.normalize(source), oci.normalize(target)],
        log=log,
    )  # fmt: skip
