"""Run the emulator by hand: `python -m tests.kubeapi --port 8001`, then point a client at it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from tests.kubeapi.emulator import KubeEmulator


async def _serve(port: int, history: int, bookmark_interval: float, no_crds: bool) -> None:
    emulator = KubeEmulator(
        port=port, history_limit=history, bookmark_interval=bookmark_interval, crds=[] if no_crds else None
    )
    url = await emulator.start()
    print(f"Kubernetes API emulator listening on {url} (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.kubeapi", description=__doc__)
    parser.add_argument("--port", type=int, default=8001, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--history", type=int, default=1000, help="watch events kept for resuming (older: 410 Expired)")
    parser.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between watch BOOKMARK events")
    parser.add_argument("--no-crds", action="store_true", help="do not install the chart's tensor-fusion.ai CRDs")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port, args.history, args.bookmark_interval, args.no_crds))


if __name__ == "__main__":
    main()
