"""Freeze TTLs from a SchedulingConfigTemplate: parsing (good, bad, fuzzed), precedence
(--freeze-ttl > pool template > TF_HYPERVISOR_SCHEDULING_CONFIG > defaults), and the policy
freezing a worker after the template's TTL on a fake clock."""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.cli import build_parser
from daemons.hypervisor.options import add_node_arguments, node_options
from tfcore.config.env import HYPERVISOR_SCHEDULING_CONFIG
from tfcore.hypervisor.freezeconfig import (
    FreezeTTLs,
    pool_template_name,
    resolve_freeze_ttls,
    resolve_with_sources,
    scheduling_of,
    template_ttls,
)
from tfcore.hypervisor.tiering import DEFAULT_FREEZE_TTLS, TierCandidate, TierSettings, plan_tiers
from tfcore.model.codec import decode
from tfcore.model.crdgen import openapi_schema
from tfcore.model.errors import ValidationError
from tfcore.model.hypervisor import MAX_TTL_SECONDS, HypervisorScheduling, parse_ttl
from tfcore.model.workload import SchedulingConfigTemplate

GIB = 1 << 30
UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def template(*rules: dict[str, Any], name: str = "t") -> dict[str, Any]:
    return {
        "apiVersion": "tensor-fusion.ai/v1",
        "kind": "SchedulingConfigTemplate",
        "metadata": {"name": name},
        "spec": {"hypervisor": {"autoFreezeAndResume": {"autoFreeze": list(rules)}}},
    }


def ttls_of(*rules: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    return template_ttls(scheduling_of(template(*rules), where="SchedulingConfigTemplate/t"))


# ---- parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("2m", 120), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), ("1.5h", 5400), ("500ms", 0.5)],
)
def test_ttl_durations(text: str, seconds: float) -> None:
    assert parse_ttl(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "0", "0s", "5", "1x", "-1m", "1m-", " 1m", "1 m", "m", "1e3s", "never", "1y"])
def test_ttl_garbage_is_rejected_with_the_form(text: str) -> None:
    with pytest.raises(ValueError, match="expected a positive duration"):
        parse_ttl(text)


def test_a_template_entry_gives_both_ttls_and_enable_false_means_never() -> None:
    got = ttls_of(
        {"qos": "low", "enable": True, "freezeToMemTTL": "5m", "freezeToDiskTTL": "2h"},
        {"qos": "medium", "enable": False, "freezeToMemTTL": "1m", "freezeToDiskTTL": "1h"},
        {"qos": "high", "freezeToMemTTL": "1d"},  # enable unset: on; no disk TTL: never to disk
    )
    assert got == {"low": (300.0, 7200.0), "medium": (None, None), "high": (86400.0, None)}


def test_a_template_without_hypervisor_settings_sets_nothing() -> None:
    bare = {"apiVersion": "tensor-fusion.ai/v1", "kind": "SchedulingConfigTemplate", "metadata": {"name": "t"}}
    assert template_ttls(scheduling_of(bare, where="t")) == {}
    assert template_ttls(scheduling_of(None, where="t")) == {}
    assert template_ttls(HypervisorScheduling()) == {}


@pytest.mark.parametrize(
    ("rules", "field", "words"),
    [
        ([{"qos": "urgent"}], "autoFreeze[0].qos", "urgent"),
        ([{"qos": "low", "freezeToMemTTL": "soon"}], "autoFreeze[0]", "freezeToMemTTL: 'soon' is not a duration"),
        ([{"qos": "low", "freezeToMemTTL": "0s"}], "autoFreeze[0]", "freezeToMemTTL: '0s' is zero"),
        ([{"qos": "low", "freezeToDiskTTL": "99999w"}], "autoFreeze[0]", "over ten years"),
        (
            [{"qos": "low", "freezeToMemTTL": "2h", "freezeToDiskTTL": "1h"}],
            "autoFreeze[0]",
            "freezeToDiskTTL: 1h is shorter than freezeToMemTTL 2h",
        ),
        ([{"qos": "low"}, {"qos": "high"}, {"qos": "low"}], "autoFreezeAndResume", "autoFreeze[2].qos: 'low' appears"),
        ([{"qos": "low", "enable": "yes"}], "autoFreeze[0].enable", "bool"),
        ([{"freezeToMemTTL": "1m"}], "autoFreeze[0]", "qos"),
    ],
)
def test_bad_templates_are_refused_naming_the_field(rules: list[dict[str, Any]], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode(template(*rules), SchedulingConfigTemplate, where="SchedulingConfigTemplate/t")
    (problem,) = info.value.problems
    assert problem.field.startswith("SchedulingConfigTemplate/t.spec.hypervisor.autoFreezeAndResume")
    assert problem.field.endswith(field)
    assert words in str(problem)


durations = st.lists(st.tuples(st.integers(0, 10**4), st.sampled_from(sorted(UNITS))), min_size=1, max_size=3).map(
    lambda parts: ("".join(f"{n}{u}" for n, u in parts), sum(n * UNITS[u] for n, u in parts))
)


@given(durations)
def test_ttl_parser_sums_go_style_parts(case: tuple[str, float]) -> None:
    text, seconds = case
    if 0 < seconds <= MAX_TTL_SECONDS:
        assert parse_ttl(text) == pytest.approx(seconds)
    else:
        with pytest.raises(ValueError, match="expected a positive duration"):
            parse_ttl(text)


@given(st.text(max_size=16))
def test_ttl_parser_never_crashes(text: str) -> None:
    try:
        seconds, message = parse_ttl(text), ""
    except ValueError as exc:
        seconds, message = 1.0, str(exc)
    assert 0 < seconds <= MAX_TTL_SECONDS
    assert not message or "expected a positive duration" in message


ttl_text = st.one_of(st.none(), durations.map(lambda c: c[0]), st.text(max_size=6))
rule = st.fixed_dictionaries(
    {"qos": st.sampled_from(["low", "medium", "high", "critical", "urgent", ""])},
    optional={
        "enable": st.one_of(st.booleans(), st.none(), st.just("true")),
        "freezeToMemTTL": ttl_text,
        "freezeToDiskTTL": ttl_text,
    },
)


@given(st.lists(rule, max_size=5))
def test_the_autofreeze_list_decodes_or_names_the_field(rules: list[dict[str, Any]]) -> None:
    for r in rules:
        for key in ("freezeToMemTTL", "freezeToDiskTTL", "enable"):
            if r.get(key, 0) is None:
                del r[key]
    try:
        ttls, fields = ttls_of(*rules), []
    except ValidationError as exc:
        ttls, fields = {}, [p.field for p in exc.problems]
    assert all(f.startswith("SchedulingConfigTemplate/t.spec.hypervisor") for f in fields)
    if fields:
        return
    assert len(ttls) == len(rules)  # one entry per QoS level, each a known one
    for mem, disk in ttls.values():
        assert mem is None or 0 < mem <= MAX_TTL_SECONDS
        assert disk is None or 0 < disk <= MAX_TTL_SECONDS
        assert mem is None or disk is None or mem <= disk


# ---- where a node's TTLs come from -----------------------------------------------------------


def test_flags_win_over_the_template_over_the_environment_over_defaults() -> None:
    env: FreezeTTLs = {"medium": (10.0, 20.0), "high": (30.0, 40.0)}
    pool: FreezeTTLs = {"high": (50.0, 60.0), "low": (70.0, 80.0)}
    flags: FreezeTTLs = {"low": (1.0, None)}
    ttls, sources = resolve_with_sources(flags, [("env", env), ("pool", pool)])
    assert ttls == {"low": (1.0, None), "medium": (10.0, 20.0), "high": (50.0, 60.0), "critical": (None, None)}
    assert sources == {"low": "--freeze-ttl", "medium": "env", "high": "pool", "critical": "default"}
    assert resolve_freeze_ttls({}) == DEFAULT_FREEZE_TTLS


def test_the_node_finds_its_pools_template() -> None:
    node = {"metadata": {"name": "n", "labels": {"tensor-fusion.ai/gpupool": "p"}}}
    pools: dict[str, dict[str, Any]] = {"p": {"spec": {"schedulingConfigTemplate": "t"}}, "q": {"spec": {}}}
    assert pool_template_name(node, pools) == "t"
    assert pool_template_name({"metadata": {"name": "n"}}, pools) is None  # not in a pool
    assert pool_template_name(node, {"p": {"spec": {}}}) is None  # a pool without a template
    assert pool_template_name(node, {}) is None  # the pool not seen (yet)
    assert pool_template_name(None, pools) is None  # no GPUNode yet


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_node_arguments(parser, {})
    return parser.parse_args(list(argv))


def test_node_options_take_the_flags_over_the_environment() -> None:
    rules: list[dict[str, Any]] = [
        {"qos": "low", "freezeToMemTTL": "5m", "freezeToDiskTTL": "1d"},
        {"qos": "high", "enable": False},
    ]
    config = {"autoFreezeAndResume": {"autoFreeze": rules}}
    environ = {HYPERVISOR_SCHEDULING_CONFIG.name: json.dumps(config)}
    options = node_options(_args("--freeze-ttl", "high=1h/2h"), environ)
    assert options.tiering.freeze_ttls["low"] == (300.0, 86400.0)  # the environment's
    assert options.tiering.freeze_ttls["high"] == (3600.0, 7200.0)  # the flag's, over enable: false
    assert options.tiering.freeze_ttls["medium"] == DEFAULT_FREEZE_TTLS["medium"]
    assert options.freeze_ttl_flags == {"high": (3600.0, 7200.0)}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{", "TF_HYPERVISOR_SCHEDULING_CONFIG"),
        (
            '{"autoFreezeAndResume": {"autoFreeze": [{"qos": "x"}]}}',
            "TF_HYPERVISOR_SCHEDULING_CONFIG.autoFreezeAndResume.autoFreeze[0].qos",
        ),
        ('{"autoFreezeAndResume": []}', "TF_HYPERVISOR_SCHEDULING_CONFIG.autoFreezeAndResume"),
    ],
)
def test_a_bad_environment_config_names_the_variable(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        HYPERVISOR_SCHEDULING_CONFIG.read({HYPERVISOR_SCHEDULING_CONFIG.name: text})
    assert [p.field for p in info.value.problems] == [field]


def test_a_blank_environment_config_is_unset() -> None:
    assert HYPERVISOR_SCHEDULING_CONFIG.read({HYPERVISOR_SCHEDULING_CONFIG.name: " "}) is None


# ---- the policy applies the template's TTLs ----------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _moves(settings: TierSettings, qos: str, last_active: float, clock: FakeClock) -> list[tuple[str, str]]:
    worker = TierCandidate(
        name="w",
        qos=qos,
        idle_s=clock.now - last_active,
        active=False,
        where="device",
        resident_bytes=GIB,
        request_bytes=GIB,
    )
    return [(a.to, a.reason) for a in plan_tiers(80 * GIB, [worker], settings)]


def test_a_low_worker_is_frozen_after_the_templates_ttl_not_the_default() -> None:
    ttls = resolve_freeze_ttls({}, ttls_of({"qos": "low", "freezeToMemTTL": "5m", "freezeToDiskTTL": "1h"}))
    settings = TierSettings(expand_to_host_mem_percent=50, freeze_ttls=ttls)
    clock = FakeClock()
    last_active = clock.now
    clock.advance(60)  # the default low TTL (1m) has passed: the template's 5m has not
    assert _moves(settings, "low", last_active, clock) == []
    clock.advance(239)
    assert _moves(settings, "low", last_active, clock) == []
    clock.advance(1)
    assert _moves(settings, "low", last_active, clock) == [("host", "ttl")]


def test_enable_false_never_freezes_that_qos_by_idle_time() -> None:
    ttls = resolve_freeze_ttls({}, ttls_of({"qos": "low", "enable": False}))
    settings = TierSettings(expand_to_host_mem_percent=50, freeze_ttls=ttls)
    clock = FakeClock()
    last_active = clock.now
    clock.advance(52 * 604800)
    assert _moves(settings, "low", last_active, clock) == []
    assert _moves(settings, "medium", last_active, clock) == [("host", "ttl")]  # its default still applies


def test_up_help_documents_the_freeze_ttl_flags_and_their_precedence() -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    text = " ".join(commands.choices["up"].format_help().split())
    assert "--freeze-ttl QOS=MEM/DISK" in text
    assert "Wins over the pool's SchedulingConfigTemplate" in text
    assert "defaults low=1m/1h medium=2m/2h high=1d/1w critical=never/never" in text


@given(st.one_of(st.text(alphabet="0123456789.smhdwnuµ", max_size=8), durations.map(lambda c: c[0])))
def test_the_crd_pattern_and_the_model_agree_on_the_form(text: str) -> None:
    schema = openapi_schema("SchedulingConfigTemplate")["properties"]["spec"]["properties"]["hypervisor"]
    rule = schema["properties"]["autoFreezeAndResume"]["properties"]["autoFreeze"]["items"]["properties"]
    pattern = rule["freezeToMemTTL"]["pattern"]
    assert pattern == rule["freezeToDiskTTL"]["pattern"]
    try:
        parse_ttl(text)
        well_formed = True
    except ValueError as exc:
        well_formed = "is not a duration" not in str(exc)  # zero or too long: the model's own bounds
    assert (re.fullmatch(pattern, text) is not None) == well_formed
