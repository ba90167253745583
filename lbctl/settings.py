"""Settings of every lbctl component: flags over ``LBCTL_*`` environment over defaults (pure).

Each component declares a pydantic-settings model; ``add_flags`` turns its fields into
command-line flags, and ``load`` builds the model with the flags that were given taking
precedence over the environment, so one declaration serves both.
"""

from __future__ import annotations

import argparse
import functools
from typing import Literal, TypeVar, get_args, get_origin

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from lbctl import objects
from lbctl.logs import LogFormat


class CommonSettings(BaseSettings):
    """What every component that talks to Kubernetes takes."""

    model_config = SettingsConfigDict(env_prefix="LBCTL_", extra="forbid")

    kubeconfig: str | None = Field(
        default=None,
        description="kubeconfig file; default: $KUBECONFIG, then in-cluster, then ~/.kube/config",
    )
    namespace: str = Field(default="lbctl-system", description="namespace of lbctl's own objects")
    log_level: str = Field(default="info", description="debug, info, warning or error")
    log_format: LogFormat = Field(
        default="text", description="text, or json: one object a line (Loki, Elasticsearch)"
    )


class PoolSettings(CommonSettings):
    """What every component that reads the pool ConfigMap or picks Services takes."""

    config_map: str = Field(default="lbctl-config", description="name of the pool ConfigMap")
    lb_class: str = Field(default=objects.LB_CLASS, description="our loadBalancerClass")
    class_less: bool = Field(default=True, description="handle Services without a class")


S = TypeVar("S", bound=BaseSettings)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser, model: type[BaseSettings]) -> None:
    """One flag per field; unset flags stay None so the environment can fill them."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        add = functools.partial(
            parser.add_argument, _flag(name), dest=name, default=None, help=info.description
        )
        if annotation is bool:
            add(action=argparse.BooleanOptionalAction)
        elif annotation in (int, float):
            add(type=int if annotation is int else float)
        elif get_origin(annotation) is Literal:
            add(choices=list(get_args(annotation)))
        else:
            add()


def load(model: type[S], args: argparse.Namespace) -> S:
    """The model from flags that were given, then ``LBCTL_*`` variables, then defaults."""
    given = {k: v for k, v in vars(args).items() if k in model.model_fields and v is not None}
    return model(**given)
