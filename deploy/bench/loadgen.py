"""A small HTTP/1.1 load generator for loopback: keep-alive connections, requests built in advance, so the
generator costs a few tens of microseconds a request and leaves the cores to the server under test.

- `closed_loop`: `connections` clients, each sending its next request when the last was answered, for
  `seconds`: the throughput;
- `open_loop`: requests at a fixed rate, each timed from when it was *due* (not when a connection became
  free), so a server that falls behind shows it in the latency (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Request:
    raw: bytes  # the whole request, head and body

    @classmethod
    def post(cls, host: str, path: str, token: str, body: bytes) -> Request:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {token}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        return cls(head.encode() + body)


@dataclass
class LoadResult:
    sent: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    # (index of the request, when it was due, when it was answered, status), in completion order
    timeline: list[tuple[int, float, float, int]] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    def as_dict(self) -> dict[str, object]:
        return {
            "requests": self.sent,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.per_second, 1),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "p50_ms": round(1000 * self.percentile(50), 2),
            "p99_ms": round(1000 * self.percentile(99), 2),
            "max_ms": round(1000 * max(self.latencies, default=0.0), 2),
        }


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def exchange(self, request: Request) -> int:
        self.writer.write(request.raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        if length:
            await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(
    host: str, port: int, requests: Iterator[Request], *, connections: int, seconds: float
) -> LoadResult:
    result = LoadResult()
    deadline = time.perf_counter() + seconds
    pool = [await _Connection.open(host, port) for _ in range(connections)]

    async def client(connection: _Connection) -> None:
        while time.perf_counter() < deadline:
            request = next(requests, None)
            if request is None:
                return
            started = time.perf_counter()
            status = await connection.exchange(request)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            result.sent += 1

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in pool))
    finally:
        result.seconds = time.perf_counter() - started
        for connection in pool:
            connection.close()
    return result


async def open_loop(
    host: str, port: int, requests: Sequence[Request], *, rate: float, connections: int = 64
) -> LoadResult:
    """Send `requests` at `rate` per second; a request waits for a free connection if all are busy."""
    result = LoadResult()
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    pool = [await _Connection.open(host, port) for _ in range(connections)]
    for connection in pool:
        idle.put_nowait(connection)

    async def one(index: int, request: Request, due: float) -> None:
        connection = await idle.get()
        try:
            status = await connection.exchange(request)
        finally:
            idle.put_nowait(connection)
        answered = time.perf_counter()
        result.latencies.append(answered - due)
        result.statuses[status] += 1
        result.timeline.append((index, due, answered, status))

    start = time.perf_counter() + 0.05
    tasks = []
    try:
        for index, request in enumerate(requests):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(index, request, due)))
        await asyncio.gather(*tasks)
    finally:
        result.seconds = time.perf_counter() - start
        result.sent = len(result.latencies)
        for connection in pool:
            connection.close()
    return result
