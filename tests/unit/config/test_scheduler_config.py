from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.sched.fleet import fleet, pod
from tfcore.config.scheduler import (
    SCHEDULER_NAME,
    ExtenderSettings,
    kube_scheduler_document,
    parse_scheduler_config,
    reload,
    render_kube_scheduler_config,
)
from tfcore.model.errors import ValidationError
from tfcore.sched import Framework, default_registry
from tfcore.sched.plugins import GPUResourcesFitArgs, TopologyArgs

SPEC_DOCUMENT = (Path(__file__).resolve().parents[2] / "fixtures/scheduler-config.yaml").read_text()
EXTENDER = ExtenderSettings(url_prefix="http://tensor-fusion-sys-scheduler.tensor-fusion-sys:8080/scheduler")


def _with(**changes: object) -> str:
    doc = yaml.safe_load(SPEC_DOCUMENT)
    doc.update(changes)
    return yaml.safe_dump(doc)


def _with_args(plugin: str, args: object) -> str:
    doc = yaml.safe_load(SPEC_DOCUMENT)
    for entry in doc["profiles"][0]["pluginConfig"]:
        if entry["name"] == plugin:
            entry["args"] = args
    return yaml.safe_dump(doc)


HEAVY = {"name": "A", "weight": 1000}


def _fields(text: str) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_scheduler_config(text)
    return [p.field for p in info.value.problems]


def test_the_specs_document_parses_verbatim() -> None:
    config = parse_scheduler_config(SPEC_DOCUMENT)
    assert config.profile.scheduler_name == SCHEDULER_NAME
    args = config.profile.plugin_args
    assert args["GPUResourcesFit"] == GPUResourcesFitArgs(max_worker_per_node=256, vram_weight=0.7, tflops_weight=0.3)
    assert args["GPUNetworkTopologyAware"] == TopologyArgs(total_intranet_bandwidth_gbps=100.0)
    # kube-scheduler's own plugin args are kept exactly as written
    assert args["NodeResourcesFit"]["scoringStrategy"]["resources"][2] == {"name": "nvidia.com/gpu", "weight": 5}
    uses = config.plugin_uses()
    assert [u.name for u in uses] == ["GPUResourcesFit", "GPUNetworkTopologyAware"]
    assert {"preFilter", "filter", "score", "reserve"} <= uses[0].points
    framework = Framework(fleet(1, 1), uses, default_registry())
    assert framework.schedule(pod("p")).ok
    assert config.raw["profiles"][0]["pluginConfig"][2]["name"] == "NodeResourcesFit"


def test_derived_kube_scheduler_document() -> None:
    config = parse_scheduler_config(SPEC_DOCUMENT)
    doc = kube_scheduler_document(config, EXTENDER)
    profile = doc["profiles"][0]
    assert [e["name"] for e in profile["pluginConfig"]] == ["NodeResourcesFit"]
    assert profile["pluginConfig"][0] == yaml.safe_load(SPEC_DOCUMENT)["profiles"][0]["pluginConfig"][2]
    (extender,) = doc["extenders"]
    assert extender["urlPrefix"] == EXTENDER.url_prefix
    assert (extender["filterVerb"], extender["prioritizeVerb"], extender["bindVerb"]) == (
        "filter",
        "prioritize",
        "bind",
    )
    assert extender["nodeCacheCapable"] is True
    assert extender["ignorable"] is False
    assert "managedResources" not in extender
    assert "GPUResourcesFit" not in render_kube_scheduler_config(config, EXTENDER)
    # the source config is not modified
    assert "extenders" not in config.raw
    managed = kube_scheduler_document(config, ExtenderSettings("http://x", managed_resources=["tensor-fusion.ai/gpu"]))
    assert managed["extenders"][0]["managedResources"] == [{"name": "tensor-fusion.ai/gpu", "ignoredByScheduler": True}]


def test_plugins_section_picks_points_weights_and_strips_ours_for_kube_scheduler() -> None:
    doc = yaml.safe_load(SPEC_DOCUMENT)
    doc["profiles"][0]["plugins"] = {
        "filter": {"enabled": [{"name": "GPUResourcesFit"}, {"name": "GPUNetworkTopologyAware"}]},
        "score": {"enabled": [{"name": "GPUResourcesFit", "weight": 5}, {"name": "NodeResourcesFit", "weight": 2}]},
        "preFilter": {"enabled": [{"name": "GPUResourcesFit"}]},
        "reserve": {"enabled": [{"name": "GPUResourcesFit"}]},
        "postBind": {"enabled": [{"name": "GPUResourcesFit"}]},
    }
    config = parse_scheduler_config(yaml.safe_dump(doc))
    fit, topo = config.plugin_uses()
    assert fit.points == frozenset({"filter", "score", "preFilter", "reserve"})
    assert fit.weight == 5
    assert topo.points == frozenset({"filter"})
    kube = kube_scheduler_document(config, EXTENDER)
    assert kube["profiles"][0]["plugins"] == {"score": {"enabled": [{"name": "NodeResourcesFit", "weight": 2}]}}
    assert kube["extenders"][0]["weight"] == 5


def test_disabling_our_plugin() -> None:
    doc = yaml.safe_load(SPEC_DOCUMENT)
    doc["profiles"][0]["plugins"] = {"multiPoint": {"disabled": [{"name": "GPUNetworkTopologyAware"}]}}
    assert [u.name for u in parse_scheduler_config(yaml.safe_dump(doc)).plugin_uses()] == ["GPUResourcesFit"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("profiles: [", "scheduler-config.yaml"),
        ("- a list", "scheduler-config.yaml"),
        (_with(apiVersion="kubescheduler.config.k8s.io/v1beta3"), "apiVersion"),
        (_with(kind="Config"), "kind"),
        (_with(profiles=[{"schedulerName": "default-scheduler"}]), "profiles"),
        (_with(profiles=[]), "profiles"),
        (_with(profiles=[{"schedulerName": SCHEDULER_NAME}, {"schedulerName": SCHEDULER_NAME}]), "profiles"),
        (_with_args("GPUResourcesFit", {"maxWorkerPerNode": -3}), "profiles[0].pluginConfig[0].args.maxWorkerPerNode"),
        (_with_args("GPUResourcesFit", {"vramWeight": 1.5}), "profiles[0].pluginConfig[0].args.vramWeight"),
        (_with_args("GPUResourcesFit", {"tflopsWeight": -0.1}), "profiles[0].pluginConfig[0].args.tflopsWeight"),
        (_with_args("GPUResourcesFit", {"vramWeight": "0.7"}), "profiles[0].pluginConfig[0].args.vramWeight"),
        (_with_args("GPUResourcesFit", {"maxWorkers": 3}), "profiles[0].pluginConfig[0].args.maxWorkers"),
        (_with_args("GPUResourcesFit", "oops"), "profiles[0].pluginConfig[0].args"),
        (
            _with_args("GPUNetworkTopologyAware", {"totalIntranetBandWidthGBps": "fast"}),
            "profiles[0].pluginConfig[1].args.totalIntranetBandWidthGBps",
        ),
        (_with(profiles=[{"schedulerName": SCHEDULER_NAME, "plugins": {"filtr": {}}}]), "profiles[0].plugins.filtr"),
        (
            _with(profiles=[{"schedulerName": SCHEDULER_NAME, "plugins": {"score": {"enabled": [HEAVY]}}}]),
            "profiles[0].plugins.score.enabled[0].weight",
        ),
        (_with(profiles=[{"schedulerName": SCHEDULER_NAME, "pluginConfig": {"x": 1}}]), "profiles[0].pluginConfig"),
    ],
)  # fmt: skip
def test_bad_documents_name_the_field(text: str, field: str) -> None:
    assert field in _fields(text)


def test_unknown_arg_error_names_plugin_and_arg() -> None:
    with pytest.raises(ValidationError) as info:
        parse_scheduler_config(_with_args("GPUResourcesFit", {"maxWorkerPerNode": 4, "vramWieght": 0.5}))
    problem = info.value.problems[0]
    assert problem.field.endswith("args.vramWieght")
    assert "GPUResourcesFit" in problem.message
    assert "vramWeight" in (problem.expected or "")


def test_reload_keeps_the_old_config_on_a_bad_file_and_says_why() -> None:
    current = parse_scheduler_config(SPEC_DOCUMENT)
    outcome = reload(current, _with_args("GPUResourcesFit", {"vramWeight": 2}))
    assert not outcome.applied
    assert outcome.config is current
    assert outcome.reason is not None
    assert "vramWeight" in outcome.reason


def test_reload_of_our_args_alone_applies_live() -> None:
    current = parse_scheduler_config(SPEC_DOCUMENT)
    outcome = reload(current, _with_args("GPUResourcesFit", {"maxWorkerPerNode": 8}))
    assert outcome.applied
    assert not outcome.restart_kube_scheduler
    assert outcome.config is not None
    assert outcome.config.profile.plugin_args["GPUResourcesFit"].max_worker_per_node == 8
    changed = reload(current, _with_args("NodeResourcesFit", {"scoringStrategy": {"type": "MostAllocated"}}))
    assert changed.applied
    assert changed.restart_kube_scheduler
    assert reload(None, SPEC_DOCUMENT).restart_kube_scheduler


@given(st.text(max_size=200))
def test_any_text_parses_or_gives_a_validation_error(text: str) -> None:
    with contextlib.suppress(ValidationError):
        parse_scheduler_config(text)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
        lambda c: (
            st.lists(c, max_size=3)
            | st.dictionaries(st.sampled_from(["name", "args", "weight", "enabled", "x"]), c, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_any_profile_content_gives_a_config_or_a_validation_error(junk: object) -> None:
    for profile in (
        {"schedulerName": SCHEDULER_NAME, "plugins": junk},
        {"schedulerName": SCHEDULER_NAME, "pluginConfig": junk},
    ):
        with contextlib.suppress(ValidationError):
            parse_scheduler_config(
                yaml.safe_dump(
                    {
                        "apiVersion": "kubescheduler.config.k8s.io/v1",
                        "kind": "KubeSchedulerConfiguration",
                        "profiles": [profile],
                    }
                )
            )
