"""`python -m services.validation` (or `registry serve validation`): run the validation service."""

from __future__ import annotations

from services.validation.app import create_app
from services.validation.settings import ValidationSettings
from shared.service import serve
from shared.settings import load_settings


def main() -> None:
    settings = load_settings(ValidationSettings)
    serve(create_app(settings), settings, "validation")


if __name__ == "__main__":
    main()
