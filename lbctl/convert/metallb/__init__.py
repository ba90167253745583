"""MetalLB's configuration, in every shape users keep it, → pool drafts (pure).

- Resources (group ``metallb.io``: IPAddressPool, L2Advertisement, ...), as files, a
  multi-document manifest or ``kubectl get ... -o yaml``'s List: ``resources``. MetalLB 0.13
  and later read only these, so when they are present a legacy ConfigMap is ignored.
- The legacy ConfigMap (data key ``config``; MetalLB up to 0.12), the text of that key, Helm
  values carrying ``configInline`` (the chart up to 0.12), or a release object whose values
  carry it (Flux ``HelmRelease``, k3s ``HelmChart``, Argo CD ``Application``): ``legacy``.

Everything else in the input (other ConfigMaps, Deployments, Namespaces, CRDs of a ``kustomize
build``) is ignored, with a note that says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lbctl import strict_yaml
from lbctl.convert import inputs
from lbctl.convert.metallb import legacy, resources
from lbctl.convert.model import ConvertError, Found, names, show

CONFIG_KEY = "config"
CONFIG_MAP = "config"  # MetalLB's default --config
HELM_VALUES = "configInline"
# Keys of MetalLB's Helm charts' values: a mapping with these and no configInline is Helm values.
HELM_KEYS = frozenset({"controller", "speaker", "crds", "prometheus", "existingConfigMap", "rbac"})
EXPECTED = (
    "MetalLB's IPAddressPool and L2Advertisement resources, its legacy ConfigMap (data key "
    "'config') or that config's text, Helm values with configInline, or a HelmRelease, "
    "HelmChart or Argo CD Application carrying them"
)


@dataclass
class _Legacy:
    """A legacy config found in the input: where it is, the decoded config, notes about it."""

    where: str
    document: object
    notes: list[str] = field(default_factory=list)


def read(objects: list[object]) -> Found:
    found_resources = [o for o in objects if resources.is_resource(o)]
    configs: list[_Legacy] = []
    unrelated: list[inputs.Object] = []
    bare: list[object] = []
    for obj in objects:
        if resources.is_resource(obj):
            continue
        if not inputs.is_object(obj):
            bare.append(obj)
        elif (legacy_config := _legacy_in_object(obj)) is not None:
            configs.append(legacy_config)
        else:
            unrelated.append(obj)
    notes = []
    if found_resources and bare:
        notes.append(f"ignored {len(bare)} document(s) without a kind beside the resources")
    elif len(bare) > 1:
        raise ConvertError(
            f"the input has {len(bare)} documents without a kind; expected {EXPECTED}"
        )
    elif bare:
        configs.append(_Legacy("", _legacy_in_bare(bare[0])))
    if found_resources:
        found = resources.read(found_resources)
        if configs:
            notes.append(
                f"{len(configs)} legacy config(s) ignored: MetalLB 0.13 and later read only "
                "its resources"
            )
    else:
        if not configs:
            kinds = sorted({str(o["kind"]) for o in unrelated})
            found_kinds = names(kinds, quote=False) or "nothing"
            raise ConvertError(
                f"no MetalLB configuration in the input (found {found_kinds}); expected {EXPECTED}"
            )
        chosen = _preferred(configs)
        found = legacy.read(chosen.document, chosen.where)
        notes.extend(chosen.notes)
        passed_over = [c.where.rstrip(": ") for c in configs if c is not chosen]
        if passed_over:
            notes.append(
                f"ignored {names(passed_over, quote=False)}: MetalLB reads the ConfigMap "
                f"{show(CONFIG_MAP)}"
            )
    if unrelated:
        notes.append(inputs.ignored(unrelated, "MetalLB configuration"))
    found.notes[:0] = notes
    return found


def _legacy_in_object(obj: inputs.Object) -> _Legacy | None:
    """The legacy config ``obj`` carries, if it is a ConfigMap or a HelmRelease holding one."""
    if obj["kind"] == "ConfigMap":
        data = obj.get("data")
        if not isinstance(data, dict) or CONFIG_KEY not in data:
            return None
        where = f"{inputs.describe(obj)}: data.config: "
        text = data[CONFIG_KEY]
        if not isinstance(text, str):
            raise ConvertError(f"{where}must be a string holding MetalLB's YAML config")
        others = [
            f"{inputs.describe(obj)}: key {show(k)} ignored: MetalLB reads only 'config'"
            for k in data
            if k != CONFIG_KEY
        ]
        return _Legacy(where, _load(text, where), others)
    found = _helm_values(obj)
    if found is not None:
        place, values = found
        if isinstance(values, dict) and HELM_VALUES in values:
            where = f"{inputs.describe(obj)}: {place}.{HELM_VALUES}: "
            return _Legacy(where, _inline(values[HELM_VALUES], where))
    return None


def _helm_values(obj: inputs.Object) -> tuple[str, object] | None:
    """``(place, values)`` of a Helm release object: Flux's HelmRelease, k3s' HelmChart (values
    as a YAML string), Argo CD's Application (a mapping or a string)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return None
    kind, group = obj["kind"], inputs.api_group(obj)
    if (kind, group) == ("HelmRelease", "helm.toolkit.fluxcd.io"):
        return "spec.values", spec.get("values")
    if (kind, group) == ("HelmChart", "helm.cattle.io") and "valuesContent" in spec:
        where = f"{inputs.describe(obj)}: spec.valuesContent: "
        content = spec["valuesContent"]
        return "spec.valuesContent", _load(content, where) if isinstance(content, str) else None
    if (kind, group) == ("Application", "argoproj.io"):
        source = spec.get("source")
        helm = source.get("helm") if isinstance(source, dict) else None
        if isinstance(helm, dict) and isinstance(helm.get("valuesObject"), dict):
            return "spec.source.helm.valuesObject", helm["valuesObject"]
        if isinstance(helm, dict) and isinstance(helm.get("values"), str):
            where = f"{inputs.describe(obj)}: spec.source.helm.values: "
            return "spec.source.helm.values", _load(helm["values"], where)
    return None


def _legacy_in_bare(doc: object) -> object:
    """A document without kind: Helm values (``configInline``), or the config itself."""
    if isinstance(doc, dict) and HELM_VALUES in doc:
        return _inline(doc[HELM_VALUES], f"{HELM_VALUES}: ")
    if isinstance(doc, dict) and HELM_KEYS & set(doc) and not set(doc) & legacy.KEYS:
        raise ConvertError(
            f"Helm values without {HELM_VALUES}: nothing to convert; MetalLB 0.13 and later "
            "take IPAddressPool and L2Advertisement resources (give those, from the cluster: "
            "kubectl get ipaddresspools,l2advertisements -A -o yaml)"
        )
    return doc


def _inline(value: object, where: str) -> object:
    """configInline is a mapping (the chart renders it with toYaml), or sometimes a string."""
    return _load(value, where) if isinstance(value, str) else value


def _load(text: str, where: str) -> object:
    try:
        return strict_yaml.load(text)
    except strict_yaml.YamlError as exc:
        raise ConvertError(f"{where}{exc.detail}") from None


def _preferred(configs: list[_Legacy]) -> _Legacy:
    """The one legacy config: of several, that of the ConfigMap named 'config' (MetalLB's)."""
    if len(configs) == 1:
        return configs[0]
    named = [c for c in configs if c.where.startswith(f"ConfigMap {show(CONFIG_MAP)}:")]
    if len(named) == 1:
        return named[0]
    places = [c.where.rstrip(": ") for c in configs]
    raise ConvertError(
        f"the input has {len(configs)} MetalLB configs ({names(places, quote=False)}): keep one"
    )
