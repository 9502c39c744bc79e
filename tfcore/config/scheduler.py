"""scheduler-config.yaml: the KubeSchedulerConfiguration document of the spec, typed and validated.

Users write one document (ConfigMap tensor-fusion-sys-config, key scheduler-config.yaml) that
names our plugins (GPUResourcesFit, GPUNetworkTopologyAware) beside kube-scheduler's own.
A stock kube-scheduler refuses plugins it does not know, so `kube_scheduler_document` derives
what it gets: our plugins and their args removed, an `extenders:` entry pointing at our
extender added. Args of plugins that are not ours (NodeResourcesFit...) pass through untouched.
`reload` is the pure half of live reloading: new text in, new config or the old one and why.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import yaml

from tfcore.model.errors import Problem, ValidationError
from tfcore.model.pods import SCHEDULER_NAME as SCHEDULER_NAME  # noqa: PLC0414 - the scheduler daemon imports it here
from tfcore.sched.framework import EXTENSION_POINTS, PluginUse, Registry
from tfcore.sched.plugins import default_registry

API_VERSION: Final = "kubescheduler.config.k8s.io/v1"
KIND: Final = "KubeSchedulerConfiguration"
CONFIGMAP: Final = "tensor-fusion-sys-config"
CONFIGMAP_KEY: Final = "scheduler-config.yaml"
# Extension points of KubeSchedulerConfiguration profiles[].plugins (kube-scheduler v1).
K8S_POINTS: Final = (
    "multiPoint", "preEnqueue", "queueSort", "preFilter", "filter", "postFilter", "preScore", "score",
    "reserve", "permit", "preBind", "bind", "postBind",
)  # fmt: skip
_WHERE: Final = CONFIGMAP_KEY


@dataclass(frozen=True, slots=True)
class PluginRef:
    name: str
    weight: int | None = None


@dataclass(frozen=True, slots=True)
class PluginSet:
    enabled: tuple[PluginRef, ...] = ()
    disabled: tuple[PluginRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Profile:
    """One profiles[] entry: its plugin sets and args (ours parsed, others kept as written)."""

    scheduler_name: str
    plugins: Mapping[str, PluginSet] = field(default_factory=dict)
    plugin_args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """The whole document: `raw` as written (plain data), `profiles` typed."""

    raw: Mapping[str, Any]
    profiles: tuple[Profile, ...]
    our_plugins: frozenset[str]

    @property
    def profile(self) -> Profile:
        """The tensor-fusion-scheduler profile (parsing guarantees there is one)."""
        return next(p for p in self.profiles if p.scheduler_name == SCHEDULER_NAME)

    def plugin_uses(self) -> list[PluginUse]:
        """Our plugins as the framework runs them: args, extension points and score weight.

        A profile that does not mention our plugins in `plugins:` (like the spec's document)
        runs both of them at every point they implement, with score weight 1.
        """
        profile = self.profile
        uses = []
        for name in sorted(self.our_plugins):
            points = _points_of(name, profile.plugins)
            if not points:
                continue
            weight = next((r.weight for r in profile.plugins.get("score", PluginSet()).enabled if r.name == name), None)
            multi = next(
                (r.weight for r in profile.plugins.get("multiPoint", PluginSet()).enabled if r.name == name), None
            )
            uses.append(PluginUse(name, profile.plugin_args.get(name), points, weight or multi or 1))
        # GPUResourcesFit computes the GPU candidates the others read: it runs first.
        return sorted(uses, key=lambda u: (u.name != "GPUResourcesFit", u.name))


def _points_of(name: str, plugins: Mapping[str, PluginSet]) -> frozenset[str]:
    mentioned = any(r.name == name for s in plugins.values() for r in (*s.enabled, *s.disabled))
    if not mentioned:
        points = set(EXTENSION_POINTS)
    else:
        multi = plugins.get("multiPoint", PluginSet())
        points = set(EXTENSION_POINTS) if any(r.name == name for r in multi.enabled) else set()
        points |= {p for p, s in plugins.items() if p in EXTENSION_POINTS and any(r.name == name for r in s.enabled)}
    for point, plugin_set in plugins.items():
        if any(r.name in (name, "*") for r in plugin_set.disabled):
            points -= set(EXTENSION_POINTS) if point == "multiPoint" else {point}
    return frozenset(points)


def parse_scheduler_config(text: str | bytes, *, registry: Registry | None = None) -> SchedulerConfig:
    """Parse and validate the document; raise ValidationError listing every problem."""
    registry = registry if registry is not None else default_registry()
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError.single(
            _WHERE, f"not valid YAML: {exc}", "a KubeSchedulerConfiguration YAML document"
        ) from None
    if not isinstance(doc, dict):
        raise ValidationError.single(_WHERE, f"got {type(doc).__name__}", "a KubeSchedulerConfiguration mapping")
    problems: list[Problem] = []
    if doc.get("apiVersion") != API_VERSION:
        problems.append(Problem("apiVersion", f"got {doc.get('apiVersion')!r}", API_VERSION))
    if doc.get("kind") != KIND:
        problems.append(Problem("kind", f"got {doc.get('kind')!r}", KIND))
    profiles: list[Profile] = []
    raw_profiles = doc.get("profiles")
    if not isinstance(raw_profiles, list) or not raw_profiles:
        problems.append(Problem("profiles", "missing or empty", f"a list with a profile named {SCHEDULER_NAME}"))
    else:
        for i, raw in enumerate(raw_profiles):
            profile = _profile(raw, f"profiles[{i}]", registry, problems)
            if profile is not None:
                profiles.append(profile)
        names = [p.scheduler_name for p in profiles]
        if SCHEDULER_NAME not in names and len(profiles) == len(raw_profiles):
            problems.append(
                Problem("profiles", f"no profile named {SCHEDULER_NAME} (found {', '.join(names)})", SCHEDULER_NAME)
            )
        for name in {n for n in names if names.count(n) > 1}:
            problems.append(Problem("profiles", f"schedulerName {name} appears twice", "unique scheduler names"))
    if "extenders" in doc and doc["extenders"] is not None and not isinstance(doc["extenders"], list):
        problems.append(Problem("extenders", "must be a list", "a list of extender configs"))
    if problems:
        raise ValidationError(problems)
    return SchedulerConfig(raw=doc, profiles=tuple(profiles), our_plugins=frozenset(registry))


def _profile(raw: object, where: str, registry: Registry, problems: list[Problem]) -> Profile | None:
    if not isinstance(raw, dict):
        problems.append(Problem(where, f"got {type(raw).__name__}", "a profile mapping"))
        return None
    name = raw.get("schedulerName", "default-scheduler")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{where}.schedulerName", f"got {name!r}", "a scheduler name"))
        return None
    plugins = _plugin_sets(raw.get("plugins"), f"{where}.plugins", problems)
    args: dict[str, Any] = {}
    config = raw.get("pluginConfig") or []
    if not isinstance(config, list):
        problems.append(Problem(f"{where}.pluginConfig", "must be a list", "a list of {name, args}"))
        config = []
    for j, entry in enumerate(config):
        here = f"{where}.pluginConfig[{j}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(Problem(here, "needs a string name", "{name: PluginName, args: {...}}"))
            continue
        plugin = entry["name"]
        if plugin in args:
            problems.append(Problem(f"{here}.name", f"{plugin} is configured twice", "one entry per plugin"))
            continue
        if plugin in registry:
            try:
                args[plugin] = registry[plugin].parse_args(entry.get("args"), f"{here}.args")
            except ValidationError as exc:
                problems.extend(exc.problems)
        else:
            args[plugin] = entry.get("args")  # kube-scheduler's own plugin: passed through untouched
    return Profile(scheduler_name=name, plugins=plugins, plugin_args=args)


def _plugin_sets(raw: object, where: str, problems: list[Problem]) -> dict[str, PluginSet]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(Problem(where, f"got {type(raw).__name__}", "a mapping of extension points"))
        return {}
    sets: dict[str, PluginSet] = {}
    for point, value in raw.items():
        if point not in K8S_POINTS:
            problems.append(Problem(f"{where}.{point}", "unknown extension point", "one of " + ", ".join(K8S_POINTS)))
            continue
        if value is None:
            continue
        if not isinstance(value, dict):
            problems.append(
                Problem(f"{where}.{point}", f"got {type(value).__name__}", "{enabled: [...], disabled: [...]}")
            )
            continue
        sets[point] = PluginSet(
            enabled=_refs(value.get("enabled"), f"{where}.{point}.enabled", problems),
            disabled=_refs(value.get("disabled"), f"{where}.{point}.disabled", problems),
        )
    return sets


def _refs(raw: object, where: str, problems: list[Problem]) -> tuple[PluginRef, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.append(Problem(where, "must be a list", "a list of {name, weight}"))
        return ()
    refs = []
    for k, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            problems.append(Problem(f"{where}[{k}]", "needs a string name", "{name: PluginName}"))
            continue
        weight = item.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100):
            problems.append(Problem(f"{where}[{k}].weight", f"got {weight!r}", "an integer from 0 to 100"))
            weight = None
        refs.append(PluginRef(item["name"], weight))
    return tuple(refs)


# ---- what kube-scheduler itself gets ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExtenderSettings:
    """Where kube-scheduler reaches our extender and how it treats it."""

    url_prefix: str
    filter_verb: str = "filter"
    prioritize_verb: str = "prioritize"
    bind_verb: str = "bind"
    weight: int = 1
    http_timeout: str = "5s"
    enable_https: bool = False
    # Not ignorable: placing a GPU pod without an allocation would break isolation, so kube-scheduler
    # must wait for us. This kube-scheduler runs only the tensor-fusion-scheduler profile.
    ignorable: bool = False
    # Extended resources the extender owns (kube-scheduler then skips them in its own fit
    # check and only calls the extender for pods that request one). None: called for every pod.
    managed_resources: Sequence[str] = ()


def kube_scheduler_document(config: SchedulerConfig, extender: ExtenderSettings) -> dict[str, Any]:
    """The document for the stock kube-scheduler: our plugins removed, our extender added."""
    doc = copy.deepcopy(dict(config.raw))
    ours = config.our_plugins
    for profile in doc.get("profiles") or []:
        plugin_config = [e for e in profile.get("pluginConfig") or [] if e.get("name") not in ours]
        if plugin_config:
            profile["pluginConfig"] = plugin_config
        else:
            profile.pop("pluginConfig", None)
        plugins = profile.get("plugins")
        if isinstance(plugins, dict):
            for point in list(plugins):
                value = plugins[point]
                if not isinstance(value, dict):
                    continue
                for key in ("enabled", "disabled"):
                    kept = [r for r in value.get(key) or [] if r.get("name") not in ours]
                    if kept:
                        value[key] = kept
                    else:
                        value.pop(key, None)
                if not value:
                    del plugins[point]
            if not plugins:
                del profile["plugins"]
    weight = max((u.weight for u in config.plugin_uses() if "score" in u.points), default=extender.weight)
    entry: dict[str, Any] = {
        "urlPrefix": extender.url_prefix,
        "filterVerb": extender.filter_verb,
        "prioritizeVerb": extender.prioritize_verb,
        "bindVerb": extender.bind_verb,
        "weight": max(1, weight),
        "enableHTTPS": extender.enable_https,
        "httpTimeout": extender.http_timeout,
        "nodeCacheCapable": True,
        "ignorable": extender.ignorable,
    }
    if extender.managed_resources:
        entry["managedResources"] = [{"name": r, "ignoredByScheduler": True} for r in extender.managed_resources]
    others = [e for e in doc.get("extenders") or [] if e.get("urlPrefix") != extender.url_prefix]
    doc["extenders"] = [*others, entry]
    return doc


def render_kube_scheduler_config(config: SchedulerConfig, extender: ExtenderSettings) -> str:
    return yaml.safe_dump(kube_scheduler_document(config, extender), sort_keys=False)


# ---- reload --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """The config to use after a file change and what changed.

    `applied` False: the new text was refused and `config` is the old one; `error` says why.
    `restart_kube_scheduler`: the part kube-scheduler sees changed, so its pod must roll;
    changes to our plugins' args alone apply live.
    """

    config: SchedulerConfig | None
    applied: bool
    error: ValidationError | None = None
    restart_kube_scheduler: bool = False

    @property
    def reason(self) -> str | None:
        return str(self.error) if self.error else None


def reload(current: SchedulerConfig | None, text: str | bytes, *, registry: Registry | None = None) -> ReloadOutcome:
    try:
        new = parse_scheduler_config(text, registry=registry)
    except ValidationError as exc:
        return ReloadOutcome(config=current, applied=False, error=exc)
    probe = ExtenderSettings(url_prefix="")
    restart = current is None or kube_scheduler_document(current, probe) != kube_scheduler_document(new, probe)
    return ReloadOutcome(config=new, applied=True, restart_kube_scheduler=restart)
