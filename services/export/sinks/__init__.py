"""Where transfers go: the sink interface and its two implementations, chosen by `EXPORT_SINK`."""

from __future__ import annotations

from services.export.settings import ExportSettings
from services.export.sinks.base import Held, Sink, SinkOperation, SinkUnavailable
from services.export.sinks.filedrop import FileDropSink, signing_key
from services.export.sinks.sql import SqlSink
from shared.settings import key_bytes

__all__ = ["FileDropSink", "Held", "Sink", "SinkOperation", "SinkUnavailable", "SqlSink", "open_sink"]


def open_sink(settings: ExportSettings) -> Sink:
    if settings.sink == "file":
        assert settings.signing_key is not None  # the settings refuse a file sink without one
        return FileDropSink(settings.sink_dir, signing_key(key_bytes(settings.signing_key)))
    return SqlSink(settings.sink_database_url)
