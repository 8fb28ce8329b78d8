"""Metrics for Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Response

from relay import metrics

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response)
async def get_metrics() -> Response:
    """Prometheus text exposition of every relay metric."""
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
