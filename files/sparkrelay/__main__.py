"""Run the relay: ``python3 -m sparkrelay`` (settings from $RELAY_CONFIG, keys from the environment)."""

from __future__ import annotations

import json
import logging
import os
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn

from sparkrelay.http_api import create_app
from sparkrelay.mcp_tools import mcp_app, mcp_server
from sparkrelay.relay import Relay
from sparkrelay.store import ConversationStore
from sparkrelay.upstream import Upstream


def main() -> None:
    settings = json.loads(Path(os.environ.get("RELAY_CONFIG", "/relay/relay.json")).read_text())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # one line per exchange from the relay itself; the HTTP client's own lines add nothing
    logging.getLogger("httpx").setLevel(logging.WARNING)
    upstream = Upstream(settings["upstream_url"], os.environ.get("RELAY_UPSTREAM_KEY", ""),
                        float(settings["turn_timeout"]))
    relay = Relay(ConversationStore(Path(settings["data_dir"])), upstream, settings)
    server = mcp_server(relay)
    mcp = mcp_app(server)

    @asynccontextmanager
    async def lifespan(app):
        async with server.session_manager.run():
            yield
        await upstream.close()

    app = create_app(relay, os.environ["RELAY_API_KEY"], mcp, lifespan, int(settings["max_body_bytes"]))
    uvicorn.run(app, host=settings.get("listen_address", "0.0.0.0"), port=int(settings["port"]),
                log_level="warning")


if __name__ == "__main__":
    main()
