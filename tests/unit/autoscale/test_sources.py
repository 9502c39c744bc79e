"""Cron rules, the external recommender's wire format, and merging the sources."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tfcore.autoscale.cron import CronRuleError, decide, is_open
from tfcore.autoscale.external import parse_reply, request_body
from tfcore.autoscale.merge import SourceResult, merge
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.model.autoscaling import CronScalingRule
from tfcore.model.codec import decode
from tfcore.model.errors import ValidationError

GIB = 1024**3
SPEC = Resources(Amounts(10.0, 4 * GIB), Amounts(20.0, 8 * GIB))
THURSDAY_NOON = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def rule(name: str, start: str, end: str, tflops: str = "40") -> CronScalingRule:
    return decode(
        {
            "enable": True,
            "name": name,
            "start": start,
            "end": end,
            "desiredResources": {"requests": {"tflops": tflops}, "limits": {"tflops": "80"}},
        },
        CronScalingRule,
    )


def test_a_rule_is_open_between_start_and_end() -> None:
    business = rule("business", "0 9 * * *", "0 18 * * *")
    assert is_open(business, THURSDAY_NOON)
    assert not is_open(business, THURSDAY_NOON.replace(hour=20))
    assert not is_open(msgspec.structs.replace(business, enable=False), THURSDAY_NOON)


def test_open_rule_sets_resources_and_closing_reverts_to_the_spec() -> None:
    rules = [rule("business", "0 9 * * *", "0 18 * * *")]
    during = decide(rules, SPEC, THURSDAY_NOON, None)
    assert during.rule == "business"
    assert during.resources is not None
    assert during.resources.requests.tflops == 40.0
    assert during.resources.limits.tflops == 80.0
    assert during.resources.requests.vram == SPEC.requests.vram  # not named: unchanged
    after = decide(rules, SPEC, THURSDAY_NOON.replace(hour=20), previously_active="business")
    assert after.rule is None
    assert after.resources == SPEC
    assert decide(rules, SPEC, THURSDAY_NOON.replace(hour=20), None).resources is None


def test_two_open_rules_are_an_error() -> None:
    rules = [rule("a", "0 9 * * *", "0 18 * * *"), rule("b", "0 10 * * *", "0 14 * * *")]
    with pytest.raises(CronRuleError, match="2 rules are open"):
        decide(rules, SPEC, THURSDAY_NOON, None)


def test_bad_cron_expression_names_the_field() -> None:
    with pytest.raises(ValidationError, match="start"):
        decode({"start": "61 * * * *", "end": "0 1 * * *"}, CronScalingRule)


def test_external_reply_parsing() -> None:
    body = b'{"needScaleUp": true, "reason": "queue", "recommendedResources": {"requests": {"tflops": "30"}}}'
    advice = parse_reply(body, SPEC)
    assert advice.resources is not None
    assert advice.resources.requests.tflops == 30.0
    assert advice.resources.limits.tflops == 30.0  # lifted to the request
    assert parse_reply(b'{"needScaleUp": false}', SPEC).resources is None
    assert request_body("w", "ns", SPEC)["currentResources"]["requests"]["tflops"] == "10"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"nope", "externalScaler.reply"),
        (b'{"needScaleUp": "yes"}', "externalScaler.reply"),
        (b'{"needScaleUp": true}', "recommendedResources"),
        (
            b'{"needScaleDown": true, "recommendedResources": '
            b'{"requests": {"vram": "4Gi"}, "limits": {"vram": "1Gi"}}}',
            "limits.vram",
        ),
    ],
)
def test_bad_external_replies_name_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_reply(body, SPEC)
    assert field in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_external_reply_fuzz(body: bytes) -> None:
    try:
        parse_reply(body, SPEC)
    except ValidationError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("externalScaler.reply")


def test_merge_takes_the_largest_request_per_resource_and_skips_failures() -> None:
    percentile = SourceResult("percentile", Resources(Amounts(12.0, 6 * GIB), Amounts(24.0, 9 * GIB)))
    external = SourceResult("external", error="connection refused")
    cron = SourceResult("cron", Resources(Amounts(30.0, 2 * GIB), Amounts(30.0, 2 * GIB)), floor=True)
    merged = merge(SPEC, [percentile, external, cron])
    assert merged.resources is not None
    assert merged.resources.requests.tflops == 30.0
    assert merged.winners["compute"] == "cron"
    assert merged.resources.requests.vram == 6 * GIB
    assert merged.winners["vram"] == "percentile"
    assert merged.errors == ["external: connection refused"]


def test_merge_respects_what_each_source_covers() -> None:
    compute_only = SourceResult(
        "percentile", Resources(Amounts(1.0, 64 * GIB), SPEC.limits), covers=frozenset({"compute"})
    )
    merged = merge(SPEC, [compute_only])
    assert merged.resources is not None
    assert merged.resources.requests.vram == SPEC.requests.vram
    assert merge(SPEC, [SourceResult("x", error="down")]).resources is None
