"""Server-side sessions of the console (``Sessions``).

A sign-in makes a session: a random token (``secrets.token_urlsafe(32)``) that goes to the
browser in the ``bwv_session`` cookie (HttpOnly, Secure, SameSite=Strict, Path=/), and a
CSRF token that every form of the session carries. The database keeps only the token's
SHA-256: a copy of it opens nothing. A session ends when unused for
``ConsoleConfig.session_idle_s``, in any case ``session_max_s`` after the sign-in, at
sign-out, and when its account is disabled or its password changed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from console.accounts import AccountStore
from console.core import Account, ConsoleConfig
from console.db import ConsoleDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    token_sha256 TEXT PRIMARY KEY,
    account_name TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    last_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_account ON sessions (account_name);
"""

COOKIE = "bwv_session"


@dataclass(frozen=True)
class Session:
    token: str  # the cookie's value (never stored)
    csrf: str  # the forms' synchronizer token
    account_name: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Sessions:
    """The sessions in the console's database."""

    def __init__(self, db: ConsoleDB, config: ConsoleConfig) -> None:
        self.db = db
        self.config = config
        self.accounts = AccountStore(db)
        db.ensure(SCHEMA)

    def start(self, name: str, now_us: int) -> Session:
        s = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), name)
        with self.db.tx() as c:
            c.execute(  # sessions expired unseen go now (nothing else would remove them)
                "DELETE FROM sessions WHERE last_us < ? OR created_us < ?",
                (
                    now_us - self.config.session_idle_s * 1_000_000,
                    now_us - self.config.session_max_s * 1_000_000,
                ),
            )
            c.execute(
                "INSERT INTO sessions (token_sha256, account_name, csrf, created_us, last_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (token_hash(s.token), name, s.csrf, now_us, now_us),
            )
        return s

    def resolve(self, token: str, now_us: int, touch: bool = True) -> tuple[Account, str] | None:
        """The session's account and CSRF token; None when there is no such live session.
        ``touch`` False: a page's own live polling, which does not count as use (a tablet
        left on the uploads page must still sign out when idle)."""
        if not token or len(token) > 100:
            return None
        key = token_hash(token)
        rows = self.db.query(
            "SELECT account_name, csrf, created_us, last_us FROM sessions WHERE token_sha256 = ?",
            (key,),
        )
        if not rows:
            return None
        name, csrf, created_us, last_us = rows[0]
        idle_over = now_us - last_us > self.config.session_idle_s * 1_000_000
        max_over = now_us - created_us > self.config.session_max_s * 1_000_000
        account = self.accounts.get(name)
        if idle_over or max_over or account is None or account.disabled:
            self.end(token)
            return None
        if not touch:
            return account, csrf
        with self.db.tx() as c:
            c.execute(
                "UPDATE sessions SET last_us = MAX(last_us, ?) WHERE token_sha256 = ?",
                (now_us, key),
            )
        return account, csrf

    def end(self, token: str) -> None:
        with self.db.tx() as c:
            c.execute("DELETE FROM sessions WHERE token_sha256 = ?", (token_hash(token),))

    def end_all(self, name: str) -> int:
        """End every session of account ``name`` (disabled, or its password changed)."""
        with self.db.tx() as c:
            return c.execute("DELETE FROM sessions WHERE account_name = ?", (name,)).rowcount

    def count(self, name: str) -> int:
        rows = self.db.query("SELECT COUNT(*) FROM sessions WHERE account_name = ?", (name,))
        return int(rows[0][0])
