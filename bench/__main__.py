"""`make bench`: run every benchmark module in bench/ and print their JSON lines."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def main() -> int:
    for module in sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")):
        importlib.import_module(f"bench.{module}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
