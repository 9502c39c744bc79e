"""Admission hot path: parsing a pod's tensor-fusion annotations, ours vs a naive baseline.

The baseline is what a webhook without validation does (read the strings, convert with
float()); the ratio says what full validation with exact quantities costs per pod.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tfcore.model import annotations as ann

LABELS = {ann.LABEL_ENABLED: "true"}
ANNOTATIONS = {
    ann.TFLOPS_REQUEST: "100",
    ann.TFLOPS_LIMIT: "200",
    ann.VRAM_REQUEST: "3Gi",
    ann.VRAM_LIMIT: "3Gi",
    ann.QOS: "high",
    ann.GPU_COUNT: "1",
}
_UNITS = {"Gi": 1024**3, "Mi": 1024**2}


def _naive() -> object:
    out: dict[str, float] = {}
    for key, value in ANNOTATIONS.items():
        unit = _UNITS.get(value[-2:], 1)
        number = value[:-2] if unit != 1 else value
        out[key] = float(number) * unit if key != ann.QOS else 0.0
    return out


def _ours() -> object:
    return ann.parse_request(labels=LABELS, annotations=ANNOTATIONS, container_names=["main"])


def _per_call_us(func: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(rounds):
            func()
        best = min(best, (time.perf_counter() - start) / rounds)
    return best * 1e6


def main() -> None:
    rounds = 5000
    ours = _per_call_us(_ours, rounds)
    naive = _per_call_us(_naive, rounds)
    print(
        json.dumps(
            {
                "bench": "annotation_parse",
                "ours_us_per_pod": round(ours, 2),
                "naive_us_per_pod": round(naive, 2),
                "ratio_ours_over_naive": round(ours / naive, 2),
                "ours_pods_per_s": round(1e6 / ours),
            }
        )
    )


if __name__ == "__main__":
    main()
