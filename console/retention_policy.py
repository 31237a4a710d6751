"""Retention periods per category (``RetentionPolicy``), from ``STORE/retention.toml`` when
present, else the defaults in the spirit of UK guidance: ``unclassified`` (the category a
recording has until someone categorises it) kept until categorised, ``non-evidential``
deleted 31 days after the recording, ``evidential`` kept. The longest retention among a
recording's categories wins (``retention_until``)::

    default_category = "unclassified"
    [categories]
    unclassified = "until_categorised"
    non-evidential = 31            # days after the recording ends
    evidential = "keep"
    traffic = 90
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

RETENTION_FILE = "retention.toml"
KEEP = "keep"  # never deleted under retention
UNTIL_CATEGORISED = "until_categorised"  # kept until given another category
DAY_US = 86_400 * 1_000_000
_CATEGORY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")

Rule = int | str  # days, KEEP or UNTIL_CATEGORISED


class PolicyError(ValueError):
    """``retention.toml`` cannot be used (one line for the user)."""


def _defaults() -> dict[str, Rule]:
    return {"unclassified": UNTIL_CATEGORISED, "non-evidential": 31, "evidential": KEEP}


@dataclass(frozen=True)
class RetentionPolicy:
    periods: Mapping[str, Rule] = field(default_factory=_defaults)
    default_category: str = "unclassified"

    def __post_init__(self) -> None:
        for name, rule in self.periods.items():
            if not _CATEGORY.fullmatch(name):
                raise PolicyError(f"not a category name: {name!r} (a-z, 0-9, '-', '_')")
            ok = rule in (KEEP, UNTIL_CATEGORISED) or (
                isinstance(rule, int) and not isinstance(rule, bool) and rule >= 0
            )
            if not ok:
                raise PolicyError(
                    f"category {name}: {rule!r} is not a number of days, "
                    f'"{KEEP}" or "{UNTIL_CATEGORISED}"'
                )
        if self.default_category not in self.periods:
            raise PolicyError(f"the default category {self.default_category!r} has no rule")

    @property
    def categories(self) -> list[str]:
        return sorted(self.periods)

    def describe(self, category: str) -> str:
        rule = self.periods.get(category, KEEP)
        if rule == KEEP:
            return "kept"
        if rule == UNTIL_CATEGORISED:
            return "kept until categorised"
        return f"deleted {rule} days after the recording"

    def effective(self, categories: Iterable[str]) -> list[str]:
        """The categories that count: the default one when none is set."""
        cats = [c for c in categories if c]
        return cats or [self.default_category]

    def retention_days(self, categories: Iterable[str]) -> int | None:
        """The longest period among the categories; None when any of them keeps it (an
        unknown category keeps it too: never delete by mistake)."""
        rules = [self.periods.get(c, KEEP) for c in self.effective(categories)]
        if any(not isinstance(r, int) for r in rules):
            return None
        return max(int(r) for r in rules)

    def retention_until(self, categories: Iterable[str], t_end_us: int | None) -> int | None:
        """When the recording (ended ``t_end_us``) may be deleted; None: it is kept."""
        days = self.retention_days(categories)
        if days is None or t_end_us is None:
            return None
        return t_end_us + days * DAY_US


def load_policy(store_dir: Path) -> RetentionPolicy:
    """``STORE/retention.toml``, or the defaults when there is none."""
    path = Path(store_dir) / RETENTION_FILE
    if not path.is_file():
        return RetentionPolicy()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the retention policy ({exc})") from None
    cats = data.get("categories")
    if not isinstance(cats, dict) or not cats:
        raise PolicyError(f"{path}: no [categories] table")
    default = data.get("default_category", "unclassified")
    if not isinstance(default, str):
        raise PolicyError(f"{path}: default_category must be a category name")
    try:
        return RetentionPolicy(dict(cats), default)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None
