"""HTTP routes: ICCC-3 coding of one diagnosis, for coders' tools. Thin: the coder does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from services.validation.domain import ReferenceData
from services.validation.domain.reference import site_of
from shared.auth import CurrentPrincipal
from shared.events import IcccCode


class Coding(BaseModel):
    topography: str
    morphology: str
    behaviour: int
    iccc: IcccCode | None  # null: ICCC-3 does not classify this combination


def router(reference: ReferenceData) -> APIRouter:
    routes = APIRouter(prefix="/v1", tags=["coding"])

    @routes.get("/iccc", summary="ICCC-3 code of an ICD-O-3 topography, histology and behaviour")
    async def iccc(
        _: CurrentPrincipal,
        topography: Annotated[str, Query(pattern=r"^C\d{2}\.\d$", examples=["C71.6"])],
        morphology: Annotated[str, Query(pattern=r"^\d{4}$", examples=["9470"])],
        behaviour: Annotated[int, Query(ge=0, le=3, examples=[3])],
    ) -> Coding:
        code = reference.iccc.code(site_of(topography), int(morphology), behaviour)
        return Coding(topography=topography, morphology=morphology, behaviour=behaviour, iccc=code)

    return routes
