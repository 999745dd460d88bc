"""`/health` (the process is alive), `/ready` (its broker and database answer) and `/metrics`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Probe = Callable[[], Awaitable[bool]]


def health_router(probes: dict[str, Probe]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health", summary="Liveness: the process is up")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", summary="Readiness: broker and database reachable")
    async def ready(response: Response) -> dict[str, object]:
        results: dict[str, bool] = {}
        for name, probe in probes.items():
            try:
                results[name] = await probe()
            except Exception:  # a probe that raises is a dependency that is not ready
                results[name] = False
        ok = all(results.values())
        response.status_code = 200 if ok else 503
        return {"status": "ready" if ok else "not ready", "checks": results}

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
