"""The input text as Kubernetes objects: documents, ``kind: List`` spread out, what each is (pure).

The input may be one object, a multi-document file (``kustomize build``, a Helm template), the
``List`` that ``kubectl get ... -o yaml`` prints, or a bare mapping (a config text, Helm
values). Objects a reader has no use for are ignored, and a note says which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeGuard

from lbctl import strict_yaml
from lbctl.convert.model import ConvertError, names, show

MAX_INPUT_BYTES = 16 << 20  # a whole install manifest fits; this only stops a runaway input


def read_documents(text: str) -> list[object]:
    """The non-empty documents of ``text``; a ``ConvertError`` when it is not YAML or empty."""
    if len(text.encode(errors="replace")) > MAX_INPUT_BYTES:
        raise ConvertError(f"the input is larger than {MAX_INPUT_BYTES} bytes")
    try:
        found = [d for d in strict_yaml.load_all(text) if d is not None]
    except strict_yaml.YamlError as exc:
        raise ConvertError(f"the input is {exc.detail}") from None
    if not found:
        raise ConvertError("the input is empty")
    return found


def spread_lists(documents: list[object]) -> list[object]:
    """The documents, with the items of a ``kind: List`` (``kubectl get -o yaml``) spread out."""
    out: list[object] = []
    for doc in documents:
        items = doc.get("items") if is_object(doc) and doc["kind"] == "List" else None
        if isinstance(items, list):
            out.extend(spread_lists(items))
        else:
            out.append(doc)
    return out


# A decoded document that ``is_object``: its values are as the YAML gave them, to be checked.
Object = Mapping[str, object]


def is_object(doc: object) -> TypeGuard[Object]:
    """A Kubernetes object: a mapping with a string ``kind``."""
    return isinstance(doc, dict) and isinstance(doc.get("kind"), str)


def api_group(obj: Object) -> str:
    """``metallb.io`` for ``metallb.io/v1beta1``; ``""`` for the core group (``v1``)."""
    version = obj.get("apiVersion")
    return version.rsplit("/", 1)[0] if isinstance(version, str) and "/" in version else ""


def metadata(obj: Object) -> Mapping[str, object]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def name_of(obj: Object) -> str | None:
    name = metadata(obj).get("name")
    return name if isinstance(name, str) else None


def namespace_of(obj: Object) -> str | None:
    namespace = metadata(obj).get("namespace")
    return namespace if isinstance(namespace, str) else None


def describe(obj: Object) -> str:
    """``ConfigMap 'kube-root-ca.crt'`` (or ``(unnamed)``), for notes and errors."""
    name = name_of(obj)
    return f"{obj.get('kind')} {show(name) if name is not None else '(unnamed)'}"


def ignored(objs: Sequence[Object], what: str) -> str:
    """The note for objects a reader leaves alone: ``ignored 2 objects that are not ...``."""
    plural = "object" if len(objs) == 1 else "objects"
    return f"ignored {len(objs)} {plural} that are not {what}: " + names(
        [describe(o) for o in objs], quote=False
    )


def configmap_data(cm: Object) -> Mapping[object, object]:
    data = cm.get("data")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConvertError(f"{describe(cm)}: data must be a mapping")
    return data
