import pytest
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio

async def test_docs(gateway: Gateway) -> None:
    r = await gateway.client.get("/openapi.json")
    assert r.status_code == 200
    case_id = gateway.service.report(gateway.service.reference and __import__("domain.actors").actors.Actor.of("street","jianwai"), source="hotline_12345", street="jianwai", title="t", description="d")
    await gateway.settle()
