"""Values PostgreSQL cannot store (NUL bytes) are 400s that name the problem, never 500s.

Found by the long schemathesis run (TERRAGON_LONG_TESTS=1): three internal routes crashed on a
`\\u0000` in a string. Request strings are refused by their schema now (`NO_NUL_PATTERN`, in
/schema too), before any query; `ErrorBody.detail` names the field.
"""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/api/internal/runs/start",
            {
                "threadId": "t\u0000",
                "threadChatId": "c",
                "startRequestId": "s",
                "triggerSource": "ui",
            },
        ),
        ("GET", "/api/internal/quarantine?threadId=t%00x", None),
        (
            "POST",
            "/api/internal/access/invalidate",
            {"userId": "u\u0000", "repoFullName": "acme/web", "reason": "ready_action"},
        ),
    ],
    ids=["runs-start", "quarantine-list", "access-invalidate"],
)
async def test_nul_bytes_are_a_400(client, method: str, path: str, body: dict | None) -> None:
    response = await client.request(method, path, json=body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["code"] == "ValidationException", answer
    assert {d["key"] for d in answer["detail"]} & {"threadId", "thread_id", "userId"}, answer
