"""library_paths() and the shape of the built libraries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import tfcore.native
from tfcore.native import NativeLibraryMissing, library_paths

HOOKS_DEF = Path(__file__).resolve().parents[2] / "ext" / "include" / "tf" / "hooks.def"


def test_library_paths_returns_three_existing_files() -> None:
    paths = library_paths()
    assert set(paths) == {"shim", "simcuda", "simnvml"}
    assert paths["simcuda"].name == "libcuda.so.1"
    assert paths["simnvml"].name == "libnvidia-ml.so.1"
    assert paths["simcuda"].parent == paths["simnvml"].parent  # one LD_LIBRARY_PATH entry
    for path in paths.values():
        assert path.is_file()


def test_missing_library_names_file_and_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tfcore.native.LIBRARIES, "shim", ("libnotbuilt.so",))
    with pytest.raises(NativeLibraryMissing, match=r"libnotbuilt\.so.*pip install -e \.") as info:
        library_paths()
    assert isinstance(info.value, RuntimeError)
    assert info.value.name == "shim"


def _dynamic(path: Path) -> tuple[set[str], str]:
    if shutil.which("nm") is None or shutil.which("readelf") is None:
        pytest.skip("binutils (nm, readelf) not installed")
    nm = subprocess.run(["nm", "-D", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    symbols = {line.split()[-1] for line in nm.splitlines() if line.strip()}
    needed = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True, check=True).stdout
    return symbols, needed


def test_shim_exports_only_interposed_symbols() -> None:
    symbols, needed = _dynamic(library_paths()["shim"])
    hooked = {
        line.split("(")[1].split(",")[1].strip()
        for line in HOOKS_DEF.read_text().splitlines()
        if line.startswith(("TF_HOOK(", "TF_GATE("))
    }
    assert symbols == hooked | {"dlsym"}
    assert "libpython" not in needed


@pytest.mark.parametrize("name", ["simcuda", "simnvml"])
def test_sim_libraries_do_not_link_python(name: str) -> None:
    symbols, needed = _dynamic(library_paths()[name])
    assert "libpython" not in needed
    assert not any(s.startswith(("PyInit", "tf_")) for s in symbols)
