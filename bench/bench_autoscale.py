"""Autoscaler: one recommendation pass over 1,000 workloads with 2 h of samples each.

Ours keeps a decaying histogram per workload, fed once from history and then with each
interval's new samples; a pass reads percentiles off the buckets. The naive baseline keeps
the raw samples and computes the same decayed, weighted percentiles by sorting them on every
pass (what a recommender without histograms does). Reported: the one-off load of the history,
the per-pass time of each, and their ratio.
"""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime

from tfcore.autoscale.evaluate import Situation, evaluate
from tfcore.autoscale.history import WorkloadHistory
from tfcore.autoscale.resources import Amounts, Resources
from tfcore.autoscale.settings import resolve
from tfcore.model.autoscaling import AutoScalingConfig
from tfcore.model.codec import decode

WORKLOADS = 1000
PERIOD_S = 10.0  # the hypervisor's sample period
SAMPLES = int(2 * 3600 / PERIOD_S)  # 2 h
GIB = 1024**3
NOW = datetime(2026, 12, 6, 18, 0, tzinfo=UTC)


def _traces() -> list[list[tuple[float, float, float]]]:
    rng = random.Random(11)
    start = NOW.timestamp() - SAMPLES * PERIOD_S
    traces = []
    for _ in range(WORKLOADS):
        scale = rng.uniform(1, 50)
        trace = [
            (start + i * PERIOD_S, rng.lognormvariate(0, 0.4) * scale, rng.uniform(1, 4) * GIB) for i in range(SAMPLES)
        ]
        traces.append(trace)
    return traces


def _naive_percentiles(samples: list[tuple[float, float, float]], half_life_s: float, ps: tuple[float, ...]) -> float:
    now = samples[-1][0]
    checksum = 0.0
    for column in (1, 2):
        weighted = sorted((s[column], 2.0 ** ((s[0] - now) / half_life_s)) for s in samples)
        total = sum(w for _, w in weighted)
        for p in ps:
            running = 0.0
            for value, weight in weighted:
                running += weight
                if running >= p * total:
                    checksum += value
                    break
    return checksum


def main() -> None:
    traces = _traces()
    config = decode({"autoSetResources": {"enable": True, "targetResource": "all"}}, AutoScalingConfig)
    settings = resolve(config)
    spec = Resources(Amounts(20.0, 8 * GIB), Amounts(40.0, 8 * GIB))
    situation = Situation(settings, config, spec, spec, "medium", NOW)

    start = time.perf_counter()
    histories = []
    for trace in traces:
        history = WorkloadHistory.for_settings(settings)
        for at, tflops, vram in trace:
            history.add("w0", at, tflops, vram)
        histories.append(history)
    load_s = time.perf_counter() - start

    best_ours = best_naive = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        outcomes = [evaluate(history, situation) for history in histories]
        best_ours = min(best_ours, time.perf_counter() - start)
        start = time.perf_counter()
        for trace in traces:
            _naive_percentiles(trace, settings.half_life.total_seconds(), (0.5, 0.95, 0.99))
        best_naive = min(best_naive, time.perf_counter() - start)
    confident = sum(1 for o in outcomes if o.estimate.confident)
    print(
        json.dumps(
            {
                "bench": "autoscale_recommend",
                "workloads": WORKLOADS,
                "samples_per_workload": SAMPLES,
                "confident": confident,
                "history_load_s": round(load_s, 2),
                "ours_pass_ms": round(best_ours * 1000, 1),
                "naive_pass_ms": round(best_naive * 1000, 1),
                "ratio_naive_over_ours": round(best_naive / best_ours, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
