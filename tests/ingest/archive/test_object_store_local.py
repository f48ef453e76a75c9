"""`OBJECT_STORE_URL` as a local directory (docs/configuration.md: "`s3://bucket/prefix` … or a local directory"):
a plain path, a relative one and a `file://` URL each hold the payloads in that directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from terragon_ingest.objects import QuarantineObjects
from terragon_ingest.settings import Settings


@pytest.fixture(name="base")
def fx_base() -> Settings:
    return Settings()  # built outside the event loop: it resolves the data directory


@pytest.mark.parametrize("form", ["absolute path", "relative path", "file URL"])
async def test_a_local_directory_in_any_form_holds_the_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base: Settings, form: str
) -> None:
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "payloads"
    url = {"absolute path": str(target), "relative path": "payloads", "file URL": target.as_uri()}
    settings = dataclasses.replace(base, objects=dataclasses.replace(base.objects, URL=url[form]))
    objects = QuarantineObjects.from_settings(settings)
    await objects.put("quarantine/t-1/one.json", b'{"threadId": "t-1"}')
    assert await objects.get("quarantine/t-1/one.json") == b'{"threadId": "t-1"}'
    assert (target / "quarantine/t-1/one.json").read_bytes() == b'{"threadId": "t-1"}'
    assert await objects.get("quarantine/t-1/missing.json") is None
