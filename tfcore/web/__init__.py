"""aiohttp glue: HTTP servers and clients at the edge of tfcore."""
