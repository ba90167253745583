"""The ``lbctl`` command (also ``kubectl lbctl``): one sub-command per component or task."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from lbctl import audit, config, diagnose, logs, settings, strict_yaml

if TYPE_CHECKING:  # imported at run time only by the commands that use them
    from kubernetes import client

    from lbctl.lab.lab import Lab


def _version(_: argparse.Namespace) -> int:
    print(metadata.version("lbctl"))
    return 0


def _without_lab(command: str, exc: ModuleNotFoundError) -> int:
    """The test bed is the ``lab`` extra, not in the image: say how to get it."""
    print(
        f"lbctl {command}: the test bed is not installed ({exc}): pip install 'lbctl[lab]'",
        file=sys.stderr,
    )
    return 2


def _binaries(args: argparse.Namespace) -> int:
    try:
        from lbctl.lab import assets
    except ModuleNotFoundError as exc:
        return _without_lab("binaries", exc)
    return assets.main(download=args.download)


def _run_component(
    cfg: settings.CommonSettings,
    agent: str,
    run: Callable[[client.ApiClient, threading.Event], None],
) -> int:
    """Logging, an API client named after us, SIGTERM/SIGINT to stop; then run."""
    from lbctl.kube import client as kclient

    logs.setup(cfg.log_level, cfg.log_format)
    api, choice = kclient.api_client(cfg.kubeconfig)
    api.user_agent = agent
    logging.getLogger("lbctl").info("credentials from %s", choice.source.value)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run(api, stop)
    return 0


def _controller(args: argparse.Namespace) -> int:
    from lbctl import controller

    cfg = settings.load(controller.ControllerSettings, args)
    return _run_component(
        cfg,
        f"lbctl-controller/{cfg.identity}",
        lambda api, stop: controller.Controller(api, cfg).run(stop),
    )


def _speaker(args: argparse.Namespace) -> int:
    from lbctl import speaker

    cfg = settings.load(speaker.SpeakerSettings, args)
    if not cfg.node_name:
        print(
            "lbctl speaker: the node name is required: --node-name or LBCTL_NODE_NAME "
            "(from the downward API, spec.nodeName)",
            file=sys.stderr,
        )
        return 2
    return _run_component(
        cfg, f"lbctl-speaker/{cfg.node_name}", lambda api, stop: speaker.Speaker(api, cfg).run(stop)
    )


def _drain(args: argparse.Namespace) -> int:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from lbctl import election
    from lbctl.kube import client as kclient

    cfg = settings.load(settings.CommonSettings, args)
    api, _ = kclient.api_client(cfg.kubeconfig)
    value = "true" if args.command == "drain" else None
    with api:
        try:
            client.CoreV1Api(api).patch_node(
                args.node, {"metadata": {"labels": {election.DRAIN_LABEL: value}}}
            )
        except ApiException as exc:
            print(
                f"lbctl {args.command}: node {args.node}: {exc.status} {exc.reason}",
                file=sys.stderr,
            )
            return 1
    what = (
        "drained: its speaker withdraws every address it announces; others take over"
        if value
        else "undrained: it may announce again"
    )
    print(f"node {args.node} {what}")
    return 0


def _lab(args: argparse.Namespace) -> int:
    try:
        from lbctl.lab import assets
        from lbctl.lab.lab import Lab, LabError
    except ModuleNotFoundError as exc:
        return _without_lab("lab", exc)

    _, run = LAB_ACTIONS[args.action]
    try:
        return run(Lab(), args.rest)
    except (LabError, assets.AssetError) as exc:
        print(f"lbctl lab {args.action}: {exc}", file=sys.stderr)
        return 1


def _lab_up(lab: Lab, rest: list[str]) -> int:
    unknown = [a for a in rest if a != "--processes"]
    if unknown:
        print(f"lbctl lab up: unknown arguments {unknown}", file=sys.stderr)
        return 2
    return lab.up(processes="--processes" in rest)


def _lab_kubectl(lab: Lab, rest: list[str]) -> int:
    lab.kubectl(rest)
    return 0


def _lab_exec(lab: Lab, rest: list[str]) -> int:
    if not rest:
        print(
            "lbctl lab exec: name a host and a command: lbctl lab exec client curl ...",
            file=sys.stderr,
        )
        return 2
    return lab.exec(rest[0], rest[1:])


# ``lbctl lab ACTION [REST...]``: what each action does (its help), and its handler.
LAB_ACTIONS: dict[str, tuple[str, Callable[[Lab, list[str]], int]]] = {
    "up": (
        "build and start it (idempotent): real nodes (containerd, kubelet) running the release "
        "image and deploy/; up --processes: the fast process-based lab",
        _lab_up,
    ),
    "down": ("remove all it made", lambda lab, rest: lab.down()),
    "status": ("health of each part", lambda lab, rest: lab.status()),
    "kubectl": ("ARGS go to kubectl, against the lab", _lab_kubectl),
    "exec": (
        "HOST CMD: run a command in a lab host (node1, node2, node3, client)",
        _lab_exec,
    ),
}


def _cluster_or_exit(args: argparse.Namespace) -> diagnose.ClusterView | int:
    """One reading of the cluster, or the exit status (2) after saying why there is none."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    from lbctl import objects
    from lbctl.kube import client as kclient
    from lbctl.kube import cluster

    cfg = settings.load(settings.PoolSettings, args)
    try:
        api, _ = kclient.api_client(cfg.kubeconfig)
        with api:
            return cluster.read(
                api,
                namespace=cfg.namespace,
                config_map=cfg.config_map,
                handling=objects.Handling(cfg.lb_class, cfg.class_less),
            )
    except kclient.NoCredentials as exc:
        print(f"lbctl {args.command}: {exc}", file=sys.stderr)
    except ApiException as exc:
        print(
            f"lbctl {args.command}: the API server said {exc.status} {exc.reason}", file=sys.stderr
        )
    except HTTPError as exc:
        print(f"lbctl {args.command}: cannot reach the API server: {exc}", file=sys.stderr)
    return 2


def _status(args: argparse.Namespace) -> int:
    from lbctl import status

    view = _cluster_or_exit(args)
    if isinstance(view, int):
        return view
    print(status.render(diagnose.status_report(view), args.output), end="")
    return 0


def _check(args: argparse.Namespace) -> int:
    view = _cluster_or_exit(args)
    if isinstance(view, int):
        return view
    findings = [f for f in diagnose.findings(view) if f.kind.value not in (args.ignore or ())]
    if args.output == "json":
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        print(audit.render(findings), end="")
    return 1 if findings else 0


_T = TypeVar("_T")


def _read_text(command: str, name: str) -> str | int:
    """The file's (or standard input's) text, or the exit status after saying why not.

    2 when it cannot be read at all; 1 when it is not UTF-8 text (a content problem, like any
    other invalid input). Never a traceback, whatever the bytes.
    """
    try:
        data = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        print(f"lbctl {command}: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        print(
            f"{name}: not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start}",
            file=sys.stderr,
        )
        return 1


def _document(command: str, name: str, parse: Callable[[str], _T]) -> _T | int:
    """``parse`` of file ``name``'s text ("-": standard input); or the exit status after
    saying why not: 2 when it cannot be read, 1 when it is invalid (each problem a line)."""
    text = _read_text(command, name)
    if isinstance(text, int):
        return text
    try:
        return parse(text)
    except config.InvalidInput as exc:
        for line in exc.lines:
            print(f"{name}: {line}", file=sys.stderr)
        return 1


def _validate(args: argparse.Namespace) -> int:
    name = args.file
    parsed = _document("validate", name, _parse_config_or_configmap)
    if isinstance(parsed, int):
        return parsed
    for pool in parsed.pools:
        sizes = ", ".join(f"IPv{v}: {pool.size(v)}" for v in sorted(pool.families()))
        print(
            f"pool {pool.name}: {len(pool.ranges)} range(s), {sizes}"
            f"{'' if pool.auto_assign else ', manual only'}"
        )
    for res in parsed.reservations:
        print(f"{res.label}: {res.address} (pool {res.pool}) kept for {res.service}")
    # Valid, and the controller takes it; but these Services will be refused their address.
    for res, why in config.unusable_reservations(parsed):
        print(f"{name}: warning: {res.label}: {why}", file=sys.stderr)
    print(f"{name}: valid")
    return 0


def _convert(args: argparse.Namespace) -> int:
    from lbctl import convert

    result = _document("convert", args.file, lambda text: convert.convert(args.source, text))
    if isinstance(result, int):
        return result
    print(convert.render(result), end="")
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def _parse_config_or_configmap(text: str) -> config.PoolConfig:
    """Accept the config itself or a whole ConfigMap manifest holding it."""
    try:
        document = strict_yaml.load(text)
    except strict_yaml.YamlError:
        return config.parse_yaml(text)  # reports the YAML error, and the size limit first
    if isinstance(document, dict) and document.get("kind") == "ConfigMap":
        data = document.get("data")
        return config.parse_configmap(data if isinstance(data, dict) else None)
    return config.parse_yaml(text)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="lbctl", description="Bare-metal layer-2 LoadBalancer provider for Kubernetes."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("version", help="print the version").set_defaults(run=_version)
    binaries = sub.add_parser(
        "binaries",
        help="find, or build from the Go module proxy, the Kubernetes, etcd and helm binaries "
        "the lab and tests use",
    )
    binaries.add_argument(
        "--download",
        action="store_true",
        help="fetch the official release binaries instead of building them (checked against "
        "their published SHA-512/SHA-256 sums)",
    )
    binaries.set_defaults(run=_binaries)
    from lbctl.controller import ControllerSettings

    ctl = sub.add_parser("controller", help="run the controller (allocates addresses)")
    settings.add_flags(ctl, ControllerSettings)
    ctl.set_defaults(run=_controller)
    from lbctl.speaker import SpeakerSettings

    spk = sub.add_parser("speaker", help="run the speaker (announces addresses on this node)")
    settings.add_flags(spk, SpeakerSettings)
    spk.set_defaults(run=_speaker)
    for name, text in (
        ("drain", "withdraw every announcement from NODE before maintenance"),
        ("undrain", "let NODE announce again"),
    ):
        d = sub.add_parser(name, help=text)
        d.add_argument("node", metavar="NODE")
        settings.add_flags(d, settings.CommonSettings)
        d.set_defaults(run=_drain)
    lab = sub.add_parser(
        "lab",
        help="a local lab: control plane, three node namespaces, a client, a demo",
        description="; ".join(f"{action}: {what}" for action, (what, _) in LAB_ACTIONS.items())
        + ". Needs root.",
    )
    lab.add_argument("action", choices=list(LAB_ACTIONS))
    lab.add_argument("rest", nargs=argparse.REMAINDER)
    lab.set_defaults(run=_lab)
    st = sub.add_parser("status", help="addresses, pending reasons and pool usage")
    settings.add_flags(st, settings.PoolSettings)
    st.add_argument("-o", "--output", choices=["table", "json"], default="table")
    st.set_defaults(run=_status)
    chk = sub.add_parser(
        "check",
        help="audit addresses, pools and speakers; exit status 1 when anything is wrong",
    )
    settings.add_flags(chk, settings.PoolSettings)
    chk.add_argument("-o", "--output", choices=["text", "json"], default="text")
    chk.add_argument(
        "--ignore",
        action="append",
        metavar="KIND",
        choices=[k.value for k in audit.Kind],
        help="leave out findings of this kind (repeatable), e.g. NoLiveSpeaker without speakers",
    )
    chk.set_defaults(run=_check)
    from lbctl.convert import SOURCES

    conv = sub.add_parser(
        "convert",
        help="turn MetalLB's or kube-vip's configuration into lbctl's (docs/migration.md)",
        description="Reads MetalLB's IPAddressPool/L2Advertisement resources or legacy "
        "ConfigMap (also as Helm values or a HelmRelease, HelmChart or Argo CD Application), "
        "or kube-vip's ConfigMap: a "
        "file, a multi-document manifest, kubectl's List, or - for standard input. Prints "
        "lbctl's ConfigMap on stdout, what could not be carried over on stderr (and as "
        "comments); exit 1 when the input cannot be converted, 2 when it cannot be read.",
    )
    conv.add_argument("--from", dest="source", required=True, choices=list(SOURCES))
    conv.add_argument("file", help="the manifests (or config text), or - for standard input")
    conv.set_defaults(run=_convert)
    val = sub.add_parser("validate", help="check a pool config (or ConfigMap) file offline")
    val.add_argument("file", help="the file, or - for standard input")
    val.set_defaults(run=_validate)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
