"""Where Kubernetes and etcd binaries come from: the user's directory, the cache, a build, or a
checked download (against a local HTTP server that serves the release layout)."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lbctl.lab import assets


def put(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name in names:
        f = directory / name
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)


def test_the_user_directory_wins_over_the_cache(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(tmp_path / "kb")}
    put(tmp_path / "kb", "kube-apiserver")
    put(assets.cache_dir("kube-apiserver", env), "kube-apiserver", "kube-proxy")
    found = assets.locate(["kube-apiserver", "kube-proxy"], env)
    assert found.origin == {"kube-apiserver": "user", "kube-proxy": "cache"}
    assert found.paths["kube-apiserver"] == tmp_path / "kb" / "kube-apiserver"


def test_lbctl_assets_dir_comes_before_kubebuilder_assets(tmp_path: Path) -> None:
    env = {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "LBCTL_ASSETS_DIR": str(tmp_path / "a"),
        "KUBEBUILDER_ASSETS": str(tmp_path / "kb"),
    }
    put(tmp_path / "a", "kube-proxy")
    put(tmp_path / "kb", "kube-proxy")
    assert assets.locate(["kube-proxy"], env).paths["kube-proxy"] == tmp_path / "a" / "kube-proxy"


@pytest.mark.parametrize(
    ("says", "env", "name", "folder"),
    [
        (
            "Kubernetes binaries are keyed by the default release",
            {},
            "kubelet",
            "kubernetes-v1.34.4",
        ),
        (
            "LBCTL_KUBE_VERSION picks another release and another folder",
            {"LBCTL_KUBE_VERSION": "v1.34.2"},
            "kubectl",
            "kubernetes-v1.34.2",
        ),
        ("etcd is keyed by its own version", {}, "etcd", "etcd-v3.6.4"),
        ("helm is keyed by its own version", {}, "helm", "helm-v3.22.0"),
        (
            "LBCTL_HELM_VERSION picks another helm",
            {"LBCTL_HELM_VERSION": "v3.21.4"},
            "helm",
            "helm-v3.21.4",
        ),
        (
            "LBCTL_ETCD_VERSION picks another etcd",
            {"LBCTL_ETCD_VERSION": "v3.6.5"},
            "etcd",
            "etcd-v3.6.5",
        ),
    ],
)
def test_the_cache_is_keyed_by_version(
    says: str, env: dict[str, str], name: str, folder: str, tmp_path: Path
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), **env}
    assert assets.cache_dir(name, env) == tmp_path / "lbctl" / folder / "bin", says


@pytest.mark.parametrize("bad", ["1.34.4", "v1.34", "latest", "v1.34.4; rm -rf /"])
def test_a_version_that_is_not_a_release_is_refused_with_the_setting_named(bad: str) -> None:
    with pytest.raises(assets.AssetError, match="LBCTL_KUBE_VERSION"):
        assets.kube_version({"LBCTL_KUBE_VERSION": bad})


@pytest.mark.parametrize("bad", ["v4.0.0", "v2.17.0", "3.22.0"])
def test_helm_must_be_a_helm_3_release(bad: str) -> None:
    with pytest.raises(assets.AssetError, match="LBCTL_HELM_VERSION"):
        assets.helm_version({"LBCTL_HELM_VERSION": bad})


def test_the_control_plane_never_needs_helm_but_lbctl_binaries_makes_it_too() -> None:
    assert assets.HELM not in assets.ALL
    assert set(assets.KNOWN) == {*assets.ALL, assets.HELM}


def test_a_complete_user_directory_builds_nothing(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "KUBEBUILDER_ASSETS": str(tmp_path / "kb")}
    put(tmp_path / "kb", *assets.ALL)
    said: list[str] = []
    paths = assets.ensure(assets.ALL, env=env, progress=said.append)
    assert set(paths) == set(assets.ALL)
    assert all("using user binary" in line for line in said)


def test_unknown_binaries_are_an_error() -> None:
    with pytest.raises(assets.AssetError, match="unknown binaries: kube-dns"):
        assets.ensure(["kube-dns"])


# --- the build module ------------------------------------------------------------------------

SERVED_GO_MOD = """module k8s.io/kubernetes

go 1.24.0

require (
	k8s.io/api v0.0.0
	k8s.io/client-go v0.0.0
	go.etcd.io/etcd/server/v3 v3.6.4 // indirect
)

replace (
	k8s.io/api => ./staging/src/k8s.io/api
	k8s.io/client-go => ./staging/src/k8s.io/client-go
	k8s.io/kubelet => ./staging/src/k8s.io/kubelet
	github.com/example/fork => github.com/example/fork v1.2.3
)

replace k8s.io/kms => ./staging/src/k8s.io/kms
"""


def test_staging_modules_are_read_from_the_served_go_mod() -> None:
    assert assets.staging_modules(SERVED_GO_MOD) == [
        "k8s.io/api",
        "k8s.io/client-go",
        "k8s.io/kms",
        "k8s.io/kubelet",
    ]


@pytest.mark.parametrize(
    ("kube", "tag"), [("v1.34.4", "v0.34.4"), ("v1.35.0", "v0.35.0"), ("v1.9.12", "v0.9.12")]
)
def test_staging_modules_are_pinned_to_the_matching_v0_tag(kube: str, tag: str) -> None:
    assert assets.staging_tag(kube) == tag


def test_the_build_module_requires_kubernetes_and_pins_every_staging_module() -> None:
    text = assets.build_go_mod(
        "lbctl.local/build/kubernetes",
        {"k8s.io/kubernetes": "v1.34.4"},
        dict.fromkeys(assets.staging_modules(SERVED_GO_MOD), "v0.34.4"),
    )
    assert "require k8s.io/kubernetes v1.34.4\n" in text
    assert "replace k8s.io/api => k8s.io/api v0.34.4\n" in text
    assert "replace k8s.io/kms => k8s.io/kms v0.34.4\n" in text
    assert "./staging" not in text


def test_version_flags_name_the_release_for_the_server_and_the_client() -> None:
    flags = assets.version_ldflags("v1.34.4")
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        assert f"-X {package}.gitVersion=v1.34.4" in flags
        assert f"-X {package}.gitMajor=1" in flags
        assert f"-X {package}.gitMinor=34" in flags


HELM_GO_MOD = """module helm.sh/helm/v3

go 1.26.0

require (
	github.com/spf13/cobra v1.10.2
	k8s.io/client-go v0.37.0
	k8s.io/kubectl v0.37.0
)
"""


def test_helm_gets_its_version_and_the_kubernetes_minor_of_its_client_go() -> None:
    client_go = assets.required_version(HELM_GO_MOD, "k8s.io/client-go")
    assert client_go == "v0.37.0"
    flags = assets.helm_ldflags("v3.22.0", client_go)
    assert "-X helm.sh/helm/v3/internal/version.version=v3.22.0" in flags
    for package in ("pkg/lint/rules", "pkg/chartutil"):
        assert f"-X helm.sh/helm/v3/{package}.k8sVersionMajor=1" in flags
        assert f"-X helm.sh/helm/v3/{package}.k8sVersionMinor=37" in flags
    assert "k8sVersion" not in assets.helm_ldflags("v3.22.0", None)  # helm's own default


def test_without_go_the_build_step_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(assets.AssetError, match=r"find go.*LBCTL_ASSETS_DIR.*--download"):
        assets.find_go({"PATH": str(tmp_path)}, usual=tmp_path / "go")
    put(tmp_path / "usual", "go")
    assert assets.find_go({"PATH": str(tmp_path)}, usual=tmp_path / "usual" / "go")


# --- downloads, against a local server with the release layout --------------------------------

Served = dict[str, bytes | tuple[bytes, int]]  # path → body, or (body, Content-Length claimed)


@pytest.fixture
def release_server() -> Iterator[Callable[[Served], str]]:
    """A loopback HTTP server serving the given files; returns its base URL."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def serve(files: Served) -> str:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = files.get(self.path)
                if found is None:
                    self.send_error(404)
                    return
                body, length = found if isinstance(found, tuple) else (found, len(found))
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield serve
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


ARCH = assets._arch()


def kube_files(body: bytes, *, digest_of: bytes | None = None) -> Served:
    folder = f"/release/v1.34.4/bin/linux/{ARCH}"
    digest = hashlib.sha512(digest_of if digest_of is not None else body).hexdigest()
    return {f"{folder}/kubectl": body, f"{folder}/kubectl.sha512": digest.encode()}


def etcd_files(binary: bytes) -> Served:
    stem = f"etcd-v3.6.4-linux-{ARCH}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{stem}/etcd")
        info.size = len(binary)
        tar.addfile(info, io.BytesIO(binary))
    archive = buf.getvalue()
    sums = f"{hashlib.sha256(b'other').hexdigest()}  other.zip\n"
    sums += f"{hashlib.sha256(archive).hexdigest()}  {stem}.tar.gz\n"
    return {f"/v3.6.4/{stem}.tar.gz": archive, "/v3.6.4/SHA256SUMS": sums.encode()}


def helm_files(binary: bytes, *, digest_of: bytes | None = None) -> Served:
    name = f"helm-v3.22.0-linux-{ARCH}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"linux-{ARCH}/helm")
        info.size = len(binary)
        tar.addfile(info, io.BytesIO(binary))
    archive = buf.getvalue()
    digest = hashlib.sha256(archive if digest_of is None else digest_of).hexdigest()
    return {f"/{name}": archive, f"/{name}.sha256sum": f"{digest}  {name}\n".encode()}


def download_env(tmp_path: Path, base: str) -> dict[str, str]:
    return {
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "LBCTL_DOWNLOAD_URL": base,
        "LBCTL_ETCD_DOWNLOAD_URL": base,
        "LBCTL_HELM_DOWNLOAD_URL": base,
    }


def test_download_checks_the_published_sums_and_caches_whole_binaries(
    release_server: Callable[[Served], str], tmp_path: Path
) -> None:
    base = release_server(
        {
            **kube_files(b"\x7fELF kubectl"),
            **etcd_files(b"\x7fELF etcd"),
            **helm_files(b"\x7fELF helm"),
        }
    )
    env = download_env(tmp_path, base)
    said: list[str] = []
    names = ["kubectl", "etcd", "helm"]
    paths = assets.ensure(names, env=env, progress=said.append, download=True)
    assert paths["kubectl"].read_bytes() == b"\x7fELF kubectl"
    assert paths["etcd"].read_bytes() == b"\x7fELF etcd"
    assert paths["helm"].read_bytes() == b"\x7fELF helm"
    assert paths["etcd"].parent == assets.cache_dir("etcd", env)
    assert paths["helm"].parent == assets.cache_dir("helm", env)
    assert any("kubectl: sha512 checked" in line for line in said)
    assert any(f"helm-v3.22.0-linux-{ARCH}.tar.gz: sha256 checked" in line for line in said)
    again: list[str] = []
    assets.ensure(names, env=env, progress=again.append, download=True)
    assert all("using cache binary" in line for line in again)


@pytest.mark.parametrize(
    ("says", "files", "error"),
    [
        (
            "a file whose checksum differs from the published one is refused",
            kube_files(b"\x7fELF tampered", digest_of=b"\x7fELF kubectl"),
            "verify kubectl.*does not match",
        ),
        (
            "a truncated file is refused",
            {
                **kube_files(b"\x7fELF kub", digest_of=b"\x7fELF kubectl"),
                f"/release/v1.34.4/bin/linux/{ARCH}/kubectl": (b"\x7fELF kub", 12),
            },
            "download .*kubectl",
        ),
        ("a missing checksum file is refused", {"/x": b""}, "download .*kubectl"),
        (
            "a helm archive whose checksum differs is refused",
            helm_files(b"\x7fELF tampered", digest_of=b"other"),
            "verify helm-.*does not match",
        ),
    ],
)
def test_a_bad_download_is_refused_and_nothing_is_cached(
    says: str,
    files: Served,
    error: str,
    release_server: Callable[[Served], str],
    tmp_path: Path,
) -> None:
    env = download_env(tmp_path, release_server(files))
    name = "helm" if "helm" in says else "kubectl"
    with pytest.raises(assets.AssetError, match=error):
        assets.ensure([name], env=env, progress=lambda _: None, download=True)
    cache = assets.cache_dir(name, env)
    assert not cache.exists() or not any(cache.iterdir()), says


# --- MetalLB: built from its module; unserved dependency versions pinned ---


def test_metallb_has_its_own_cache_folder_keyed_by_version(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "LBCTL_METALLB_VERSION": "v0.13.5"}
    assert assets.metallb_dir(env) == tmp_path / "lbctl" / "metallb-v0.13.5" / "bin"
    assert assets.metallb_dir({"XDG_CACHE_HOME": str(tmp_path)}).parent.name == "metallb-v0.15.2"


def test_a_cached_metallb_builds_nothing(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path), "PATH": ""}  # no go: a build would fail
    put(assets.metallb_dir(env), "controller", "speaker")
    found = assets.ensure_metallb(env=env, progress=lambda _: None)
    assert found == {n: assets.metallb_dir(env) / n for n in ("controller", "speaker")}


FRR_403 = (
    "/root/go/pkg/mod/go.universe.tf/metallb@v0.16.2/internal/k8s/k8s.go:33:2: "
    "github.com/metallb/frr-k8s@v0.0.27: reading "
    "https://proxy.golang.org/github.com/metallb/frr-k8s/@v/v0.0.27.zip: 403 Forbidden\n"
    "\tserver response: This module version is not available.\n"
)


@pytest.mark.parametrize(
    ("output", "module"),
    [
        (FRR_403, ("github.com/metallb/frr-k8s", "v0.0.27")),
        ("go: example.com/a@v1.2.3: reading https://p/example.com/a/@v/v1.2.3.mod: 404 Not Found",
         ("example.com/a", "v1.2.3")),
        ("main.go:3:2: undefined: frrv1beta1.Foo", None),  # a compile error is not a fetch
        ("reading https://p/x/@v/v1.zip: 500 Internal Server Error", None),
    ],
)  # fmt: skip
def test_a_module_the_proxy_does_not_serve_is_named_from_go_builds_output(
    output: str, module: tuple[str, str] | None
) -> None:
    assert assets.unserved_module(output) == module


@pytest.mark.parametrize(
    ("required", "served", "pin"),
    [
        # the proxy here: frr-k8s v0.0.17, v0.0.18, v0.0.21; MetalLB v0.16.2 wants v0.0.27
        ("v0.0.27", ["v0.0.17", "v0.0.18", "v0.0.21"], "v0.0.21"),
        ("v0.0.20", ["v0.0.17", "v0.0.21", "v0.0.30"], "v0.0.21"),  # the oldest above first
        ("v1.0.0", ["v1.0.0-rc.1", "junk"], None),  # no release at all
        ("v1.0.0", [], None),
    ],
)
def test_an_unserved_version_is_pinned_to_the_closest_served_release(
    required: str, served: list[str], pin: str | None
) -> None:
    assert assets.closest_served(required, served) == pin
