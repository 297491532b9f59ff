"""`orderdesk serve` with ORDERDESK_LOG_FORMAT=json, as a log collector reads it: every line it
prints, from start to stop, is one JSON object; uvicorn's access line of a request and the
app's lines written for it carry its request id; no query string reaches a line."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from tests.databases import sqlite_url
from tests.graphql_client import STAFF_TOKEN
from tests.served_processes import serve_process

CREATE_PRODUCT = """mutation($input: CreateProductInput!) {
    createProduct(input: $input) { __typename }
}"""


async def test_every_line_is_json_and_the_request_id_is_in_the_lines_of_its_request(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "serve.log"
    lamp = {"sku": "JSON-1", "name": "Lamp", "price": "2.00", "stock": 1}
    async with (
        serve_process(
            sqlite_url(tmp_path), log_path, env={"ORDERDESK_LOG_FORMAT": "json"}
        ) as running,
        httpx.AsyncClient(timeout=30) as http,
    ):
        created = await http.post(
            running.served.http_url,
            json={"query": CREATE_PRODUCT, "variables": {"input": lamp}},
            headers={"Authorization": f"Bearer {STAFF_TOKEN}", "X-Request-ID": "json-lines-1"},
        )
        assert created.json()["data"]["createProduct"]["__typename"] == "CreateProductSuccess"
        read = await http.get(
            running.served.http_url,
            params={"query": "{ __typename }", "secret": "in-the-query-string"},
            headers={"Accept": "application/json", "X-Request-ID": "json-lines-2"},
        )
        assert read.status_code == 200, read.text

    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    records: list[dict[str, Any]] = []
    for line in lines:
        record = json.loads(line)  # a line that is not JSON fails here, and shows itself
        assert isinstance(record, dict), line
        assert {"time", "level", "logger", "message"} <= record.keys(), line
        written = datetime.fromisoformat(record["time"])
        assert written.utcoffset() == UTC.utcoffset(None), line
        records.append(record)
    assert "in-the-query-string" not in log_path.read_text()
    assert any(r["message"] == "Application shutdown complete." for r in records)

    (post,) = [r for r in records if r.get("request_id") == "json-lines-1" and is_access(r)]
    assert post["method"] == "POST"
    assert post["path"] == "/graphql"
    assert post["status"] == 200
    assert post["client"].startswith("127.0.0.1:")
    assert post["level"] == "INFO"
    app_lines = [r for r in records if r.get("request_id") == "json-lines-1" and not is_access(r)]
    assert any(r["logger"] == "orderdesk.messages" for r in app_lines), records

    (get,) = [r for r in records if r.get("request_id") == "json-lines-2" and is_access(r)]
    assert (get["method"], get["path"], get["status"]) == ("GET", "/graphql", 200)

    started = [r for r in records if r["logger"] == "uvicorn.error"]
    assert started, "uvicorn's own lines are JSON too"
    assert all("request_id" not in r for r in started if "Started server" in r["message"])


def is_access(record: dict[str, Any]) -> bool:
    return bool(record["logger"] == "uvicorn.access")
