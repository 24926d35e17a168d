"""HTTP server: the aiohttp app and the process runner."""
