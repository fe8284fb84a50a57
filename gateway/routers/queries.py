"""Every read endpoint of `/api/v1`, one router the app includes: cases, views, reference, audit."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.routers import audit, cases_read, reference, views

router = APIRouter()
for module in (cases_read, views, reference, audit):
    router.include_router(module.router)
