"""The aiohttp side: the WebSocket endpoint, the HTTP API, and the app that wires them."""
