"""The lab's images: what the Dockerfile asks for, cache keys, and OCI archives containerd reads."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from lbctl.lab import images, oci

REPO = Path(__file__).resolve().parents[2]

MULTI_STAGE = """\
# a comment
FROM python:3.11.7-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lbctl ./lbctl
RUN python -m venv /opt/x \\
 && /opt/x/bin/pip install .
FROM python:3.11.7-slim-bookworm
COPY --from=build /opt/x /opt/x
"""


@pytest.mark.parametrize(
    ("dockerfile", "bases"),
    [
        pytest.param(MULTI_STAGE, ["python:3.11.7-slim-bookworm"], id="both stages: one base"),
        pytest.param(
            "FROM a AS one\nFROM one\nFROM --platform=linux/amd64 b\n",
            ["a", "b"],
            id="a stage used as a base is not an image; --platform is skipped",
        ),
        pytest.param("from debian:12\n", ["debian:12"], id="instructions are case-insensitive"),
    ],
)
def test_the_bases_a_dockerfile_starts_from(dockerfile: str, bases: list[str]) -> None:
    assert images.dockerfile_bases(dockerfile) == bases


@pytest.mark.parametrize(
    ("dockerfile", "sources"),
    [
        pytest.param(
            MULTI_STAGE, ["pyproject.toml", "README.md", "lbctl"], id="COPY --from skipped"
        ),
        pytest.param("ADD --chown=1:1 a b /x/\n", ["a", "b"], id="ADD with a flag"),
    ],
)
def test_the_context_is_what_the_dockerfile_copies(dockerfile: str, sources: list[str]) -> None:
    assert images.dockerfile_copy_sources(dockerfile) == sources


def test_the_project_dockerfile_and_deploy_agree_with_the_lab() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    [base] = images.dockerfile_bases(dockerfile)
    images.check_base_name(base)  # the lab can make it
    assert images.deploy_image(REPO / "deploy") == "lbctl:0.1.0"


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("lbctl:0.1.0", "docker.io/library/lbctl:0.1.0"),
        ("python:3.11.7-slim-bookworm", "docker.io/library/python:3.11.7-slim-bookworm"),
        ("someone/tool:1", "docker.io/someone/tool:1"),
        ("registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10.1"),
        ("localhost/x:1", "localhost/x:1"),
        ("host:5000/x:1", "host:5000/x:1"),
    ],
)
def test_names_are_stored_fully_qualified_as_containerd_does(name: str, full: str) -> None:
    assert oci.normalize(name) == full


@pytest.mark.parametrize(
    "name", ["debian:12", "python:3.12-alpine", "ghcr.io/x/python:3.11-slim-bookworm"]
)
def test_the_lab_refuses_bases_it_cannot_make(name: str) -> None:
    with pytest.raises(images.ImageError, match=r"python:3\.X-slim-bookworm"):
        images.check_base_name(name)


def test_content_keys_change_with_any_byte_and_not_with_order() -> None:
    a = images.content_key([("x", b"1"), ("y", b"2")])
    assert a == images.content_key([("y", b"2"), ("x", b"1")])
    assert a != images.content_key([("x", b"1"), ("y", b"3")])
    assert a != images.content_key([("x", b"1"), ("z", b"2")])


def test_the_release_context_leaves_bytecode_out(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "__pycache__").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("")
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"")
    (tmp_path / "README.md").write_text("")
    files = images.context_files(tmp_path, ["README.md", "pkg"])
    assert files == [Path("README.md"), Path("pkg/a.py")]
    with pytest.raises(images.ImageError, match="not in"):
        images.context_files(tmp_path, ["missing"])


def test_an_oci_archive_is_deterministic_and_names_the_image(tmp_path: Path) -> None:
    layer = tmp_path / "layer.tar"
    oci.single_file_layer(layer, "pause", b"\x7fELF...")
    config = oci.image_config(entrypoint=["/pause"], user="65535:65535")
    first = oci.write_archive(tmp_path / "a.tar", name="registry.k8s.io/pause:3.10.1",
                              layers=[layer], config=config)  # fmt: skip
    second = oci.write_archive(tmp_path / "b.tar", name="registry.k8s.io/pause:3.10.1",
                               layers=[layer], config=config)  # fmt: skip
    assert first == second
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        [entry] = index["manifests"]
        assert entry["digest"] == first
        assert entry["annotations"]["io.containerd.image.name"] == "registry.k8s.io/pause:3.10.1"
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == "3.10.1"
        manifest = json.load(tar.extractfile("blobs/sha256/" + first.split(":")[1]))  # type: ignore[arg-type]
        [layer_desc] = manifest["layers"]
        cfg = json.load(
            tar.extractfile("blobs/sha256/" + manifest["config"]["digest"].split(":")[1])  # type: ignore[arg-type]
        )
        assert cfg["rootfs"]["diff_ids"] == [layer_desc["digest"]]
        assert cfg["config"] == {"Entrypoint": ["/pause"], "User": "65535:65535"}


def test_a_static_binary_becomes_a_one_file_image_named_as_published_and_cached(
    tmp_path: Path,
) -> None:
    binary = tmp_path / "speaker"
    binary.write_bytes(b"\x7fELF static")
    said: list[str] = []
    builder = images.Builder(tmp_path / "cache", say=said.append)
    image = builder.static_binary("quay.io/metallb/speaker:v0.15.2", binary)
    assert image.name == "quay.io/metallb/speaker:v0.15.2" and image.seconds is not None
    with tarfile.open(image.archive) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        [entry] = index["manifests"]
        assert entry["annotations"]["io.containerd.image.name"] == image.name
        digest = entry["digest"].split(":")[1]
        manifest = json.load(tar.extractfile(f"blobs/sha256/{digest}"))  # type: ignore[arg-type]
        cfg_digest = manifest["config"]["digest"].split(":")[1]
        cfg = json.load(tar.extractfile(f"blobs/sha256/{cfg_digest}"))  # type: ignore[arg-type]
        assert cfg["config"] == {"Entrypoint": ["/speaker"]}  # the Pod says which user
        [layer] = manifest["layers"]
        inner = tar.extractfile("blobs/sha256/" + layer["digest"].split(":")[1])
        with tarfile.open(fileobj=inner) as files:
            assert files.getnames() == ["speaker"]
    again = builder.static_binary("quay.io/metallb/speaker:v0.15.2", binary)
    assert again.archive == image.archive and again.seconds is None  # from the cache
