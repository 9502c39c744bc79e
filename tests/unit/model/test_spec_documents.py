"""Every YAML block of the user's spec that belongs to the model parses, read straight from
production-deployment.en.md (present beside the repository as ../shared in CI and for
developers). The in-repo fixtures cover the same documents when the spec is absent."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tfcore.model.annotations import PREFIX, parse_request
from tfcore.model.kinds import decode_object

SPEC = Path(__file__).resolve().parents[3].parent / "shared/reference/production-deployment.en.md"

pytestmark = pytest.mark.skipif(not SPEC.exists(), reason=f"the spec is not beside the repository at {SPEC}")

_BLOCK = re.compile(r"```yaml\n(.*?)```", re.DOTALL)
_MARKER = re.compile(r"\s*// \[!code highlight\]")


def _blocks() -> list[Any]:
    text = SPEC.read_text(encoding="utf-8")
    blocks = []
    for raw in _BLOCK.findall(text):
        cleaned = "\n".join(line for line in _MARKER.sub("", raw).splitlines() if line.strip() != "# ...")
        blocks.append(yaml.safe_load(cleaned))
    return blocks


def _clusters() -> list[dict[str, Any]]:
    return [b for b in _blocks() if isinstance(b, dict) and b.get("kind") == "TensorFusionCluster"]


def _annotation_blocks() -> list[tuple[dict[str, str], dict[str, str]]]:
    found = []
    for block in _blocks():
        if not isinstance(block, dict) or block.get("kind") not in ("Deployment", "Pod"):
            continue
        for meta in _find_metadata(block):
            annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith(PREFIX)}
            labels = {k: v for k, v in (meta.get("labels") or {}).items() if k.startswith(PREFIX)}
            if annotations or labels:
                found.append((labels, annotations))
    return found


def _find_metadata(node: Any) -> list[dict[str, Any]]:
    """Pod metadata wherever the spec puts it (pod, template, or the template's labels)."""
    if not isinstance(node, dict):
        return []
    found = [node] if ("annotations" in node or "labels" in node) else []
    for value in node.values():
        found.extend(_find_metadata(value))
    return found


def test_the_spec_has_the_documents_we_expect() -> None:
    assert len(_clusters()) == 5
    assert len(_annotation_blocks()) >= 4


@pytest.mark.parametrize("index", range(5))
def test_spec_cluster_documents_parse(index: int) -> None:
    document = {**_clusters()[index], "metadata": {"name": "tensor-fusion-cluster"}}
    decode_object(document, where=f"spec cluster {index}")


def test_spec_annotation_blocks_parse() -> None:
    for labels, written in _annotation_blocks():
        request = parse_request(labels=labels, annotations=written)
        assert request.warnings == ()
        assert request.to_annotations() == {k: str(v) for k, v in written.items()}
