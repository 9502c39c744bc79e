"""Locations of the native libraries built by `pip install .` from ext/.

The shim and the simulated driver are plain C shared libraries shipped inside this package;
callers put them on LD_PRELOAD / LD_LIBRARY_PATH of child processes (never load the
simulated driver into a process that may also use a real one).
"""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["LIBRARIES", "NativeLibraryMissing", "library_paths"]

# name -> path inside this package.  The simulated driver has a directory of its own so
# that LD_LIBRARY_PATH can point at it without exposing anything else.
LIBRARIES: dict[str, tuple[str, ...]] = {
    "shim": ("libtfshim.so",),
    "simcuda": ("sim", "libcuda.so.1"),
    "simnvml": ("sim", "libnvidia-ml.so.1"),
}


class NativeLibraryMissing(RuntimeError):
    """A native library is not where the build should have put it."""

    def __init__(self, name: str, path: Path) -> None:
        super().__init__(
            f"native library {name!r} not found at {path}; build it with `pip install -e .` "
            "(re-run after changing anything under ext/)"
        )
        self.name = name
        self.path = path


def library_paths() -> dict[str, Path]:
    """Paths of the shim and the simulated driver libraries, checked to exist."""
    out: dict[str, Path] = {}
    root = files(__name__)
    for name, parts in LIBRARIES.items():
        # Installed packages are plain directories, so as_file() yields the real path.
        with as_file(root.joinpath(*parts)) as path:
            if not path.is_file():
                raise NativeLibraryMissing(name, path)
            out[name] = path
    return out
