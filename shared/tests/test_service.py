"""How a service process runs."""

from __future__ import annotations

import asyncio

import uvloop

from shared.service import run_event_loop


def test_services_run_on_uvloop() -> None:
    async def loop_kind() -> type[asyncio.AbstractEventLoop]:
        return type(asyncio.get_running_loop())

    assert run_event_loop(loop_kind()) is uvloop.Loop
