"""Shared fixtures: a small, fast simulated device configuration."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capture.config import Config, from_dict
from tests.servers import pg_server_url, pg_url, s3_bucket, s3_service  # noqa: F401  (fixtures)

SMALL = {
    "device_id": "sim-test-01",
    "video": {"width": 320, "height": 240, "fps": 30, "gop": 30, "bitrate": 400_000},
    "pre_record": {"seconds": 2.0, "max_mb": 16},
    "segments": {"seconds": 2.0},
}


@pytest.fixture
def small_cfg() -> Config:
    return from_dict(SMALL)


def ffprobe_streams(path: Path) -> list[dict]:
    import json

    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name,duration,start_time",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)["streams"]
