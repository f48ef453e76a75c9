"""The `docker` provider end to end against a real dockerd: run start delivers the start message
into the container (Engine API exec → the daemon's socket), the daemon inside runs the fake
agent and streams envelopes to the service, and the terminal `endSha` is compared with the
container's HEAD, read from outside (the archive endpoint)."""

from __future__ import annotations

import uuid
from pathlib import Path

from terragon_ingest.sandbox.delivery import DeliveryFailed
from tests.docker.support import (
    CHAT,
    live_service,
    post_envelope,
    register,
    run_state,
    sandbox,
    start_run,
)
from tests.fixtures.waiting import wait_until


def test_run_in_a_container_ends_with_diff_source_sha(settings, docker_image: str) -> None:
    with (
        live_service(settings) as live,
        sandbox(
            docker_image, agent_args=["--messages", "4", "--commits", "1", "--seed", "3"]
        ) as box,
    ):
        start_head = box.head()
        register(live, box, "thread-d1", strict=True)
        started = start_run(live, "thread-d1")
        assert started.status_code == 200, started.text
        body = started.json()
        assert body["delivered"] is True
        assert body["runStartSha"] == start_head  # read from outside, before the agent ran
        run_id = body["runId"]

        wait_until(
            lambda: run_state(live, run_id)["status"] in {"finished", "failed"},
            30,
            "the run to end",
        )
        run = run_state(live, run_id)
        end_head = box.head()
        assert end_head != start_head  # the agent committed inside the container
        assert run["status"] == "finished"
        assert run["runEndSha"] == end_head
        assert run["diffSource"] == "sha", run["diffSourceContext"]
        assert end_head in run["diffSourceContext"]
        assert run["daemonPayloadVersion"] == 2
        assert run["acceptedMessageCount"] >= 4


def test_head_moved_in_the_container_gives_working_tree_fallback(
    settings, docker_image: str
) -> None:
    with live_service(settings) as live, sandbox(docker_image, agent_args=["--hang"]) as box:
        register(live, box, "thread-d2", strict=True)
        started = start_run(live, "thread-d2")
        assert started.status_code == 200, started.text
        message = started.json()["daemonMessage"]
        end_sha = box.head()  # what the daemon would report…
        box.exec("sh", "-c", "echo moved > moved.txt")
        box.git("add", "moved.txt")
        box.git("commit", "-q", "-m", "after the agent")  # …then HEAD moves on
        moved = box.head()
        answer = post_envelope(
            live,
            message["token"],
            {
                "threadId": "thread-d2",
                "threadChatId": CHAT,
                "payloadVersion": 2,
                "runId": message["runId"],
                "eventId": str(uuid.uuid4()),
                "seq": 1000,
                "endSha": end_sha,
                "messages": [{"type": "result", "is_error": False, "uuid": str(uuid.uuid4())}],
            },
        )
        assert answer.status_code == 200, answer.text
        run = run_state(live, message["runId"])
        assert run["diffSource"] == "working-tree-fallback"
        assert run["diffSourceContext"].startswith("end_sha_differs")
        assert moved in run["diffSourceContext"]


def test_container_gone_before_the_terminal_gives_fallback_not_5xx(
    settings, docker_image: str
) -> None:
    with live_service(settings) as live, sandbox(docker_image, agent_args=["--hang"]) as box:
        register(live, box, "thread-d3", strict=True)
        started = start_run(live, "thread-d3")
        assert started.status_code == 200, started.text
        message = started.json()["daemonMessage"]
        end_sha = box.head()
        box.remove()
        answer = post_envelope(
            live,
            message["token"],
            {
                "threadId": "thread-d3",
                "threadChatId": CHAT,
                "payloadVersion": 2,
                "runId": message["runId"],
                "eventId": str(uuid.uuid4()),
                "seq": 1000,
                "endSha": end_sha,
                "messages": [{"type": "result", "is_error": False}],
            },
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        run = run_state(live, message["runId"])
        assert run["status"] == "finished"
        assert run["diffSource"] == "working-tree-fallback"
        assert "is gone" in run["diffSourceContext"], run["diffSourceContext"]


def test_start_without_a_container_or_without_docker_is_a_delivery_failure(
    settings, docker_image: str, tmp_path: Path
) -> None:
    """Docker unreachable, or the container missing: run start says the daemon could not be
    reached (`DeliveryFailed`: 502 once the delivery-status change lands), never a 2xx."""
    with live_service(settings) as live:
        register(live, "tg-test-no-such-container", "thread-d4", strict=True)
        missing = start_run(live, "thread-d4")
    assert missing.status_code == DeliveryFailed.status_code, missing.text
    with live_service(settings, DOCKER_SOCKET=tmp_path / "no-docker.sock") as live:
        register(live, "tg-test-any", "thread-d5", strict=True)
        unreachable = start_run(live, "thread-d5")
    assert unreachable.status_code == DeliveryFailed.status_code, unreachable.text


def test_a_container_ref_that_is_no_docker_name_is_refused(settings, docker_image: str) -> None:
    with live_service(settings) as live:
        for n, codesandbox_id in enumerate(["../etc", "a/b", "-x", "a b"]):
            register(live, codesandbox_id, f"thread-d6-{n}", strict=True)
            answer = start_run(live, f"thread-d6-{n}")
            assert answer.status_code == 422, (codesandbox_id, answer.text)
            assert "not a Docker container name" in answer.text, answer.text
