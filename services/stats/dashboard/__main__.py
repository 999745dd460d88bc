"""`python -m services.stats.dashboard`: the dashboard process, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import socket

import uvicorn

from services.stats.dashboard.app import create_app
from services.stats.dashboard.settings import DashboardSettings
from services.stats.dashboard.stream import Hub
from shared.observability.logging import configure_logging
from shared.service import run_event_loop
from shared.settings import load_settings


class _Server(uvicorn.Server):
    """Ends the event streams when shutting down: uvicorn waits for open responses before the app's
    lifespan ends, and an event stream never ends by itself."""

    def __init__(self, config: uvicorn.Config, hub: Hub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.close()
        await super().shutdown(sockets)


def main() -> None:
    settings = load_settings(DashboardSettings)
    configure_logging("dashboard", settings.log_level, settings.log_json)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,  # our JSON logging, configured above
        timeout_graceful_shutdown=5,  # nothing in flight to finish: the streams end and browsers reconnect
        access_log=False,
    )
    run_event_loop(_Server(config, app.state.hub).serve())


if __name__ == "__main__":
    main()
