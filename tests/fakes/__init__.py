"""Fakes of the hardware libraries (picamera2, pyaudio, RPi.GPIO) that follow the real APIs.

Each ``make_*`` builds fresh module objects (no state shared between tests); :func:`install`
puts them in ``sys.modules`` for one test through pytest's ``monkeypatch``, so an adapter's
lazy ``import picamera2`` finds the fake and nothing leaks into the next test.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from types import ModuleType

import pytest


def install(monkeypatch: pytest.MonkeyPatch, modules: Mapping[str, ModuleType]) -> None:
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
