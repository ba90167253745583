"""The ``lbctl`` command (also ``kubectl lbctl``): one sub-command per component or task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

from lbctl import assets


def _version(_: argparse.Namespace) -> int:
    print(metadata.version("lbctl"))
    return 0


def _binaries(_: argparse.Namespace) -> int:
    return assets.main()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="lbctl", description="Bare-metal layer-2 LoadBalancer provider for Kubernetes."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("version", help="print the version").set_defaults(run=_version)
    sub.add_parser(
        "binaries",
        help="find, or install and build, the control-plane binaries the lab and tests use",
    ).set_defaults(run=_binaries)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
