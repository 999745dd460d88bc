"""`python -m services.export` (or `registry serve export`): run the export service."""

from __future__ import annotations

from services.export.app import create_app
from services.export.settings import ExportSettings
from shared.service import serve
from shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        settings = load_settings(ExportSettings)
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    serve(create_app(settings), settings, "export")


if __name__ == "__main__":
    main()
