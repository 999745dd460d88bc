"""`python -m services.stats` (also `registry serve stats`)."""

from __future__ import annotations

from services.stats.app import create_app
from services.stats.settings import StatsSettings
from shared.service import serve
from shared.settings import load_settings


def main() -> None:
    settings = load_settings(StatsSettings)
    serve(create_app(settings), settings, "stats")


if __name__ == "__main__":
    main()
