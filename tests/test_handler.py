"""The RunPod entry: the handler runs the pipeline and streams progress through progress_update."""

from __future__ import annotations

from typing import Any

import pytest

from core.settings import Settings
from tests.conftest import EXAMPLES
from worker.handler import make_handler


def test_the_handler_reports_progress_to_runpod_and_returns_the_result(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # progress_update posts to RunPod's job API, which does not exist here: record the calls at that boundary.
    sent: list[tuple[dict[str, Any], Any]] = []
    monkeypatch.setattr("runpod.serverless.progress_update", lambda job, progress: sent.append((job, progress)))
    handler = make_handler(settings)
    job = {
        "id": "rp-123",
        "input": {
            "prompt": "hello",
            "cond_video": str(EXAMPLES / "media" / "portrait.jpg"),
            "cond_audio": {"person1": str(EXAMPLES / "media" / "speech_2.wav")},
        },
    }

    output = handler(job)

    assert output["status"] == "success" and output["job_id"] == "rp-123"
    assert all(target is job for target, _ in sent)
    assert [progress["stage"] for _, progress in sent][-1] == "completed"


def test_a_failed_job_returns_runpods_error_key(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("runpod.serverless.progress_update", lambda job, progress: None)
    output = make_handler(settings)({"id": "rp-9", "input": {"prompt": "x"}})

    # RunPod marks a job FAILED when the handler's dict carries an "error" key.
    assert output["error"]["code"] == "E_INPUT_VALIDATION"
