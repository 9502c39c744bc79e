"""The `tensor-fusion` command line, run as a user runs it: through its console script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daemons.cli import main

REPO = Path(__file__).resolve().parents[2]


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "tensor-fusion"
    return [str(script)] if script.exists() else [sys.executable, "-m", "daemons.cli"]


def test_paths_prints_one_name_path_line_per_library() -> None:
    result = subprocess.run([*_console_script(), "paths"], capture_output=True, text=True, check=True)
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert list(lines) == ["shim", "simcuda", "simnvml"]
    for path in lines.values():
        assert Path(path).is_file()
    assert Path(lines["simcuda"]).name == "libcuda.so.1"
    assert Path(lines["simnvml"]).name == "libnvidia-ml.so.1"


def test_no_command_prints_help_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "paths" in capsys.readouterr().out


def test_crds_check_passes_on_the_checked_in_files() -> None:
    assert main(["crds", "--check", "--out", str(REPO / "charts/tensor-fusion/crds")]) == 0


def test_crds_writes_then_check_detects_staleness(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crds", "--out", str(tmp_path)]) == 0
    assert main(["crds", "--check", "--out", str(tmp_path)]) == 0
    first = sorted(tmp_path.glob("*.yaml"))[0]
    first.write_text(first.read_text() + "# edited\n")
    (tmp_path / "leftover.yaml").write_text("{}\n")
    capsys.readouterr()
    assert main(["crds", "--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert first.name in err
    assert "leftover.yaml" in err
    assert "make crds" in err


def test_validate_accepts_the_spec_documents(capsys: pytest.CaptureFixture[str]) -> None:
    fixtures = sorted((REPO / "tests/fixtures/spec").glob("*.yaml"))
    assert fixtures
    assert main(["validate", *map(str, fixtures)]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_reports_bad_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: tensor-fusion.ai/v1\nkind: GPUPool\nmetadata: {name: p}\n"
        "spec:\n  capacityConfig:\n    oversubscription:\n      tflopsOversellRatio: lots\n"
        "---\napiVersion: tensor-fusion.ai/v1\nkind: Nonsense\nmetadata: {name: x}\n"
    )
    assert main(["validate", str(bad), str(tmp_path / "missing.yaml")]) == 1
    err = capsys.readouterr().err
    assert "tflopsOversellRatio" in err
    assert "Nonsense" in err
    assert "missing.yaml" in err


def test_demo_shares_one_gpu_between_two_workloads_and_exits_zero() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "daemons.demo"], capture_output=True, text=True, check=True, timeout=120
    )
    out = result.stdout
    assert "SIMULATED" in out
    assert "live:" in out
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if line.strip().startswith(("training", "inference"))
    }
    # target vs achieved compute share (measured by the workloads), VRAM limit vs peak use
    for name, target in (("training", 60.0), ("inference", 30.0)):
        assert float(rows[name][1].rstrip("%")) == target
        assert abs(float(rows[name][2].rstrip("%")) - target) <= 3.0, out
    assert rows["training"][3:] == ["3Gi", "3072MiB", "CUDA_ERROR_OUT_OF_MEMORY"]
    assert rows["inference"][3:] == ["1Gi", "768MiB", "granted"]
