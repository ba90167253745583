"""OCI image archives written without a registry or a daemon (file I/O only, no network).

An image here is a list of uncompressed layer tars plus a config; ``write_archive`` packs them
as an OCI image layout in one tar, which ``ctr images import``, ``buildah pull oci-archive:``
and ``skopeo`` all read. The name travels in the index annotations containerd reads
(``io.containerd.image.name``) and the OCI one (``org.opencontainers.image.ref.name``).
Everything is deterministic: the same inputs give the same bytes, hence the same digests.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from lbctl.jsonvalue import JSONObject, JSONValue

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
CONFIG = "application/vnd.oci.image.config.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
EPOCH = 0  # mtime of everything we write: reproducible digests


@dataclass(frozen=True)
class Blob:
    digest: str  # "sha256:<hex>"
    size: int


def normalize(name: str) -> str:
    """A Docker-style reference in the fully qualified form containerd stores (pure).

    ``lbctl:0.1.0`` → ``docker.io/library/lbctl:0.1.0``; ``registry.k8s.io/pause:3.10.1`` as is.
    """
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def file_digest(path: Path) -> Blob:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return Blob(f"sha256:{h.hexdigest()}", size)


def single_file_layer(out: Path, member: str, data: bytes, *, mode: int = 0o755) -> None:
    """A layer tar holding one file ``member`` (e.g. ``pause``), owned by root."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(member)
        info.size, info.mode, info.mtime = len(data), mode, EPOCH
        tar.addfile(info, io.BytesIO(data))


def image_config(
    *,
    entrypoint: Sequence[str],
    cmd: Sequence[str] = (),
    user: str = "",
    env: Sequence[str] = (),
) -> JSONObject:
    """The OCI image config for linux/amd64 with the given process settings (pure)."""
    cfg: JSONObject = {}
    if entrypoint:
        cfg["Entrypoint"] = list(entrypoint)
    if cmd:
        cfg["Cmd"] = list(cmd)
    if user:
        cfg["User"] = user
    if env:
        cfg["Env"] = list(env)
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }


def write_archive(
    out: Path, *, name: str, layers: Sequence[Path], config: Mapping[str, JSONValue]
) -> str:
    """Pack ``layers`` (uncompressed tars) and ``config`` into an OCI archive; return its
    manifest digest. ``name`` is stored fully qualified (see ``normalize``)."""
    full = normalize(name)
    blobs: list[tuple[str, Path | bytes]] = []
    layer_blobs = []
    for layer in layers:
        blob = file_digest(layer)
        layer_blobs.append(blob)
        blobs.append((blob.digest, layer))
    cfg = dict(config)
    cfg["rootfs"] = {"type": "layers", "diff_ids": [b.digest for b in layer_blobs]}
    cfg_bytes = _canonical(cfg)
    cfg_digest = _digest(cfg_bytes)
    blobs.append((cfg_digest, cfg_bytes))
    manifest: JSONObject = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": cfg_digest, "size": len(cfg_bytes)},
        "layers": [
            {"mediaType": LAYER_TAR, "digest": b.digest, "size": b.size} for b in layer_blobs
        ],
    }
    man_bytes = _canonical(manifest)
    man_digest = _digest(man_bytes)
    blobs.append((man_digest, man_bytes))
    tag = full.rsplit(":", 1)[1] if ":" in full.rsplit("/", 1)[-1] else "latest"
    index: JSONObject = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": man_digest,
                "size": len(man_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": full,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", _canonical({"imageLayoutVersion": "1.0.0"}))
        _add_bytes(tar, "index.json", _canonical(index))
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        seen = set()
        for digest, content in blobs:
            if digest in seen:
                continue
            seen.add(digest)
            member = "blobs/sha256/" + digest.split(":", 1)[1]
            if isinstance(content, bytes):
                _add_bytes(tar, member, content)
            else:
                info = tarfile.TarInfo(member)
                info.size, info.mode, info.mtime = content.stat().st_size, 0o644, EPOCH
                with open(content, "rb") as f:
                    tar.addfile(info, f)
    tmp.replace(out)
    return man_digest


def _canonical(obj: JSONValue) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, EPOCH
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
    tar.addfile(info)
