"""`python -m services.intake` (or `registry serve intake`): run the intake service."""

from __future__ import annotations

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.service import serve
from shared.settings import SettingsError, load_settings


def main() -> None:
    try:
        settings = load_settings(IntakeSettings)
    except SettingsError as error:
        raise SystemExit(str(error)) from None
    serve(create_app(settings), settings, "intake")


if __name__ == "__main__":
    main()
