"""`python -m tests.kubeapi` serves the same emulator for manual use."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[2]


async def test_module_entry_point_serves_until_interrupted() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.kubeapi", "--port", "0", "--no-crds", cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            banner = (await process.stdout.readline()).decode()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert url, banner
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{url.group(0)}/version") as response:
                assert (await response.json())["major"] == "1"
            async with session.get(f"{url.group(0)}/api/v1/namespaces/default") as response:
                assert (await response.json())["status"]["phase"] == "Active"
    finally:
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            assert await process.wait() == 0
