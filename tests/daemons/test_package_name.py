"""The top-level name `daemons` clashes with an unrelated PyPI distribution: installing both
overwrites files, so a foreign `daemons` distribution is refused at import, saying what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import daemons

REPO = Path(__file__).resolve().parents[2]


def _import_daemons_with(extra_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(extra_path), str(REPO)]))
    return subprocess.run(
        [sys.executable, "-c", "import daemons.cli"], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _dist_info(root: Path, name: str, version: str) -> Path:
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return root


def test_a_foreign_daemons_distribution_is_refused_at_import(tmp_path: Path) -> None:
    result = _import_daemons_with(_dist_info(tmp_path, "daemons", "1.3.2"))
    assert result.returncode != 0
    assert "the distribution daemons 1.3.2 is installed beside tensor-fusion" in result.stderr
    assert "pip uninstall daemons" in result.stderr


def test_no_clash_in_this_environment() -> None:
    assert daemons.foreign_distribution() is None
    result = _import_daemons_with(Path("/nonexistent"))
    assert result.returncode == 0, result.stderr
