"""``bwv config show``: the effective configuration written back as TOML."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DEVICE_CONFIG = Path("/etc/bwv/bwv.toml")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid TOML basic string


def to_toml(data: dict[str, Any]) -> str:
    """``data`` (scalars, then one level of tables) as TOML that reads back the same."""
    lines = [f"{k} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{name}]"]
            lines += [f"{k} = {_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"
