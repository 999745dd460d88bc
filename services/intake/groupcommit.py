"""Group commit: HTTP submissions that arrive together are registered in one database transaction.

Each submission costs its own statements either way, but a transaction of its own also costs a pooled
connection's check-out, the serialising lock (see `Database`), BEGIN and a COMMIT that waits for the
write-ahead log to reach the disk; under load those dominated (docs/benchmarks.md). A caller's request
joins the queue; one task at a time takes everything queued (up to `max_group`) and registers it in one
transaction, and each caller is answered only after that transaction committed: a 2xx still means the
submission is durable.

`register` takes the whole group and answers each submission with its result or the error it fails
alone with (refused, a conflict: raised before it writes anything, see `Intake._register`), so the
others go on. If the group's transaction fails as a whole (the database went away, a constraint raced
another process), each of its submissions is tried again in a transaction of its own, so one
submission's failure is never another's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.storage import Database

In = TypeVar("In")
Out = TypeVar("Out")

# The group's items in, in order; out, for each, its result or the exception that item alone fails with.
Register = Callable[[AsyncSession, Sequence[In]], Awaitable[list[Out | Exception]]]


class GroupCommit(Generic[In, Out]):
    def __init__(
        self,
        db: Database,
        register: Register[In, Out],
        *,
        max_group: int = 200,
    ) -> None:
        self._db = db
        self._register = register
        self._max_group = max_group
        self._queue: list[tuple[In, asyncio.Future[Out]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def register(self, item: In) -> Out:
        """Register `item` with whatever else is waiting; return once its transaction has committed."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="intake-group-commit")
        return await future

    async def _drain(self) -> None:
        # Runs while work is queued, then ends: no task lingers when the service is idle or stopping.
        while self._queue:
            group, self._queue = self._queue[: self._max_group], self._queue[self._max_group :]
            group = [(item, future) for item, future in group if not future.cancelled()]
            if not group:
                continue
            try:
                results = await self._commit(group)
            except Exception as exc:
                if len(group) == 1:
                    _settle(group[0][1], exc)
                    continue
                for item, future in group:  # each on its own: one submission's failure is not another's
                    try:
                        [(result, error)] = await self._commit([(item, future)])
                    except Exception as single:
                        result, error = None, single
                    _settle(future, error, result)
                continue
            for (_, future), (result, error) in zip(group, results, strict=True):
                _settle(future, error, result)

    async def _commit(self, group: list[tuple[In, asyncio.Future[Out]]]) -> list[tuple[Out | None, Exception | None]]:
        async with self._db.transaction(serialised=True) as session:
            outcomes = await self._register(session, [item for item, _ in group])
        return [(None, o) if isinstance(o, Exception) else (o, None) for o in outcomes]


def _settle(future: asyncio.Future[Out], error: BaseException | None, result: Out | None = None) -> None:
    if future.done():  # the caller went away (a cancelled request)
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
