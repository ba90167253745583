"""The input text as Kubernetes objects: documents, ``kind: List`` spread out, ConfigMaps (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lbctl import strict_yaml
from lbctl.convert.model import ConvertError, show

MAX_INPUT_BYTES = 16 << 20  # a whole install manifest fits; this only stops a runaway input


def read_documents(text: str) -> list[Any]:
    if len(text.encode(errors="replace")) > MAX_INPUT_BYTES:
        raise ConvertError(f"the input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        found = [d for d in strict_yaml.load_all(text) if d is not None]
    except strict_yaml.YamlError as exc:
        raise ConvertError(f"the input is {exc.detail}") from None
    if not found:
        raise ConvertError("the input is empty")
    return found


def spread_lists(documents: list[Any]) -> list[Any]:
    """The documents, with the items of a ``kind: List`` (``kubectl get -o yaml``) spread out."""
    out: list[Any] = []
    for doc in documents:
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def kinds_of(objects: list[Any]) -> list[str]:
    return [str(o["kind"]) for o in objects if isinstance(o, dict) and "kind" in o]


def configmap_name(cm: Mapping[str, Any]) -> str:
    meta = cm.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return show(name) if isinstance(name, str) else "(unnamed)"


def pick(
    objects: list[Any], source: str, fits: Callable[[Mapping[str, Any]], bool], expected: str
) -> Mapping[str, Any] | None:
    """The one ConfigMap that holds the source's config; None when the input has no kinds."""
    kinds = kinds_of(objects)
    if not kinds:
        return None
    cms = [o for o in objects if isinstance(o, dict) and o.get("kind") == "ConfigMap"]
    matching = [cm for cm in cms if fits(cm)]
    if len(matching) == 1:
        return matching[0]
    if matching:
        names = ", ".join(configmap_name(cm) for cm in matching)
        raise ConvertError(f"the input has {len(matching)} {source} ConfigMaps ({names}): keep one")
    if cms:
        names = ", ".join(configmap_name(cm) for cm in cms)
        raise ConvertError(
            f"no ConfigMap in the input holds a {source} config ({expected}): {names}"
        )
    shown = ", ".join(sorted(set(kinds))[:10])
    raise ConvertError(f"the input has no ConfigMap (found {shown}); expected {expected}")


def data_of(cm: Mapping[str, Any]) -> Mapping[Any, Any]:
    data = cm.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvertError(f"ConfigMap {configmap_name(cm)}: data must be a mapping")
    return data


def single(objects: list[Any], expected: str) -> Any:
    if len(objects) != 1:
        raise ConvertError(f"the input has {len(objects)} documents; expected {expected}")
    return objects[0]
