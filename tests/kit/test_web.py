"""Problem-details rendering and the body limit, on a small app of the kit's pieces alone."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import text

from cityhub.kit.db import create_engine
from cityhub.kit.errors import Conflict
from cityhub.kit.web import PROBLEM_JSON, BodyLimitMiddleware, install_error_handlers, on_event_loop


class Reading(BaseModel):
    station: str
    pm25: float


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=1000)

    @app.post("/readings")
    async def post_reading(body: Reading) -> dict[str, float]:
        return {"pm25": body.pm25}

    @app.post("/cases/{case_id}/close")
    async def close_case(case_id: int) -> None:
        raise Conflict(f"case {case_id} is already closed", state="closed")

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(status_code=418, detail="short and stout")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def test_hub_error_is_problem_details(http: httpx.AsyncClient) -> None:
    response = await http.post("/cases/7/close")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json() == {
        "type": "urn:cityhub:problem:conflict",
        "title": "Conflict with the current state",
        "status": 409,
        "detail": "case 7 is already closed",
        "instance": "/cases/7/close",
        "state": "closed",
    }


async def test_malformed_json(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/readings", content=b'{"station": "a",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "request body is not valid JSON"


async def test_wrong_type_names_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post("/readings", json={"station": "a", "pm25": "high"})
    body = response.json()
    assert response.status_code == 400
    assert body["type"].endswith("InvalidRequest")
    assert "body.pm25" in body["detail"]
    assert body["errors"][0]["location"] == "body.pm25"


async def test_wrong_path_parameter(http: httpx.AsyncClient) -> None:
    response = await http.post("/cases/seven/close")
    assert response.status_code == 400
    assert "path.case_id" in response.json()["detail"]


async def test_unknown_route_and_method(http: httpx.AsyncClient) -> None:
    missing = await http.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("ResourceNotFound")
    wrong = await http.get("/readings")
    assert wrong.status_code == 405
    assert wrong.headers["content-type"] == PROBLEM_JSON


async def test_oversized_body_announced(http: httpx.AsyncClient) -> None:
    response = await http.post("/readings", json={"station": "x" * 2000, "pm25": 1})
    assert response.status_code == 413
    assert response.json()["detail"] == "request body exceeds 1000 bytes"


async def test_oversized_body_streamed_without_length(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100

    response = await http.post("/readings", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


async def test_unexpected_error_is_500_without_internals(http: httpx.AsyncClient) -> None:
    response = await http.get("/boom")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert response.json()["type"].endswith("InternalError")


async def test_other_http_errors_keep_their_status_and_kind(http: httpx.AsyncClient) -> None:
    response = await http.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {
        "type": "urn:cityhub:problem:http-418",
        "title": "I'm a Teapot",
        "status": 418,
        "detail": "short and stout",
        "instance": "/teapot",
    }


async def test_client_gone_before_its_body_is_logged_not_a_500(caplog: pytest.LogCaptureFixture) -> None:
    """A device that hangs up mid-request: an info line, no 'unhandled error', no 500."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/iot/json")
    async def measures(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    sent: list[dict[str, object]] = []
    chunks = [{"type": "http.request", "body": b'{"t": 2', "more_body": True}, {"type": "http.disconnect"}]

    async def receive() -> dict[str, object]:
        return chunks.pop(0)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "path": "/iot/json",
        "raw_path": b"/iot/json",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "scheme": "http",
        "server": ("t", 80),
        "client": ("127.0.0.1", 1),
        "root_path": "",
    }
    with caplog.at_level("INFO", logger="cityhub.kit.web"):
        await app(scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400
    assert "client went away" in caplog.text
    assert "unhandled error" not in caplog.text


async def test_a_database_connection_lost_mid_request_is_503(database_url: str) -> None:
    """PostgreSQL: the server ends the connection a request is using (a restart, a terminated
    backend): a 503 problem that says to try again, not a 500, and the next request works."""
    if not database_url.startswith("postgresql"):
        pytest.skip("an embedded SQLite database has no server to lose")
    engine = create_engine(database_url)
    admin = create_engine(database_url)
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/count")
    async def count(lose: bool = False) -> int:
        async with engine.connect() as connection:
            if lose:
                pid = await connection.scalar(text("SELECT pg_backend_pid()"))
                async with admin.connect() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            return int(await connection.scalar(text("SELECT 1")) or 0)

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            lost = await client.get("/count", params={"lose": "true"})
            assert lost.status_code == 503
            assert lost.headers["content-type"].startswith(PROBLEM_JSON)
            assert lost.json()["detail"] == "the database connection was lost; try again"
            again = await client.get("/count")
            assert again.status_code == 200
            assert again.json() == 1
    finally:
        await engine.dispose()
        await admin.dispose()


class _Shown:
    """A class dependency taking query parameters, as the broker's are."""

    def __init__(self, request: Request, attrs: str | None = None, limit: int = 20) -> None:
        self.attrs = attrs
        self.limit = limit
        self.thread = threading.get_ident()


ShownParams = Annotated[_Shown, Depends(on_event_loop(_Shown))]


async def test_a_class_dependency_made_on_the_event_loop_keeps_its_parameters() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/things")
    async def things(params: ShownParams) -> dict[str, object]:
        on_loop = params.thread == threading.get_ident()
        return {"attrs": params.attrs, "limit": params.limit, "on_loop": on_loop}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get("/things", params={"attrs": "a,b", "limit": "5"})
        assert answer.json() == {"attrs": "a,b", "limit": 5, "on_loop": True}
        assert (await client.get("/things")).json() == {"attrs": None, "limit": 20, "on_loop": True}
        wrong = await client.get("/things", params={"limit": "many"})
        assert wrong.status_code == 400
        assert "limit" in wrong.json()["detail"]
