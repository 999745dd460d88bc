"""Server-sent events: every browser watching has a subscription to the changes, filtered by who it is.

A stream starts with the whole state the principal may see, then sends each change it may see as it is
applied. A browser too slow to keep up loses its subscription instead of holding memory: its stream ends,
and EventSource reconnects and starts again from the whole state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from datetime import date

from prometheus_client import Gauge

from services.stats.dashboard.state import Change, DashboardState
from shared.auth import Principal

STREAMS_OPEN = Gauge("dashboard_event_streams", "Event streams (browsers watching) open now.")


class Subscription:
    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=size)
        self.ended = False

    def offer(self, change: Change) -> None:
        if self.ended:
            return
        try:
            self.queue.put_nowait(change)
        except asyncio.QueueFull:
            self.end()

    def end(self) -> None:
        self.ended = True
        with contextlib.suppress(asyncio.QueueFull):  # a full queue has a reader about to see `ended`
            self.queue.put_nowait(None)


class Hub:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subscriptions: set[Subscription] = set()
        self.closed = False

    def __len__(self) -> int:
        return len(self._subscriptions)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self.queue_size)
        if self.closed:
            subscription.end()  # shutting down: the browser reconnects, to another replica if there is one
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.discard(subscription)

    def publish(self, change: Change) -> None:
        for subscription in list(self._subscriptions):
            subscription.offer(change)

    def close(self) -> None:
        """End every stream (at shutdown: open streams would otherwise hold the server up)."""
        self.closed = True
        for subscription in list(self._subscriptions):
            subscription.end()


def sse(event: str, data: str) -> str:
    return f"event: {event}\ndata: {data}\n\n"  # pydantic's JSON has no newlines: one data line


async def event_stream(
    principal: Principal,
    state: DashboardState,
    hub: Hub,
    today: Callable[[], date],
    heartbeat_s: float,
) -> AsyncGenerator[str, None]:
    # Subscribed before the state is read, with no await between: no change falls in between.
    subscription = hub.subscribe()
    STREAMS_OPEN.inc()
    try:
        yield "retry: 3000\n" + sse("state", state.view(principal, today()).model_dump_json())
        while True:
            try:
                change = await asyncio.wait_for(subscription.queue.get(), heartbeat_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            if change is None or subscription.ended:
                return
            if principal.may_see(change.scope):
                yield sse(change.kind, change.data)
    finally:
        STREAMS_OPEN.dec()
        hub.unsubscribe(subscription)
