"""The MutatingWebhookConfiguration example: the fields that keep pods that are not ours safe."""

from __future__ import annotations

from pathlib import Path

import yaml

from daemons.webhook.server import MUTATE_PATH

EXAMPLE = Path(__file__).resolve().parents[3] / "charts/tensor-fusion/webhook-example.yaml"


def test_only_opted_in_pod_creations_reach_the_webhook() -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert document["kind"] == "MutatingWebhookConfiguration"
    [hook] = document["webhooks"]
    assert hook["objectSelector"] == {"matchLabels": {"tensor-fusion.ai/enabled": "true"}}
    assert hook["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE"],
            "resources": ["pods"],
            "scope": "Namespaced",
        }
    ]
    assert hook["clientConfig"]["service"]["path"] == MUTATE_PATH
    assert hook["sideEffects"] == "None"
    assert hook["reinvocationPolicy"] == "IfNeeded"
    assert hook["failurePolicy"] == "Fail"
    assert 1 <= hook["timeoutSeconds"] <= 30
    assert "tensor-fusion-sys" in hook["namespaceSelector"]["matchExpressions"][0]["values"]
