"""`make demo`: show what runs today on this machine, and say plainly what does not yet."""

from __future__ import annotations

import sys

from tfcore.model.annotations import parse_request
from tfcore.model.errors import ValidationError
from tfcore.native import NativeLibraryMissing, library_paths

SAMPLE_LABELS = {"tensor-fusion.ai/enabled": "true"}
SAMPLE_ANNOTATIONS = {
    "tensor-fusion.ai/tflops-request": "100",
    "tensor-fusion.ai/tflops-limit": "200",
    "tensor-fusion.ai/vram-request": "3Gi",
    "tensor-fusion.ai/vram-limit": "3Gi",
}
NOT_YET = (
    "standalone node (`tensor-fusion up`, `tensor-fusion run`): Data plane II issue",
    "VRAM isolation and TFLOPS limiting in workloads: Data plane I and II issues",
    "scheduler extender and simulate-schedule API: Scheduler issue",
)


def main() -> int:
    print("tensor-fusion demo: what this build can do today\n")
    try:
        for name, path in library_paths().items():
            print(f"  native library {name:8s} {path}")
    except NativeLibraryMissing as exc:
        print(f"  native libraries: not built ({exc})")
    print("\n  a pod asking for 100-200 TFLOPS and 3Gi VRAM parses into:")
    request = parse_request(labels=SAMPLE_LABELS, annotations=SAMPLE_ANNOTATIONS)
    print(f"    tflops {request.tflops_request}..{request.tflops_limit}, vram {request.vram_request}")
    try:
        parse_request(
            labels=SAMPLE_LABELS,
            annotations={"tensor-fusion.ai/tflops-request": "300", "tensor-fusion.ai/tflops-limit": "200"},
        )
    except ValidationError as exc:
        print(f"  and a bad one is refused:\n    {exc}")
    print("\n  not yet available (coming with their issues):")
    for item in NOT_YET:
        print(f"    - {item}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
