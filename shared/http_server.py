"""Serving an ASGI app, the same way for every process (services, simulators, console).

uvicorn on uvloop's event loop and httptools' HTTP parser: the loop runs every consumer, relay and request of a
service, and both cut the CPU each message and request costs (docs/decisions/0028). Chosen here, once: uvicorn
makes the loop from `loop=` before the app starts, so nothing else sets an event loop policy.
"""

from typing import Any

import uvicorn


def run_http(app: Any, *, host: str, port: int, **options: Any) -> None:
    """Serve `app` until stopped; `options` go to uvicorn (e.g. timeout_graceful_shutdown)."""
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", log_config=None, access_log=False,
                **options)
