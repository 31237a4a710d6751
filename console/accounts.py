"""The console's named accounts (``AccountStore``): name, roles, the cameras a supervisor
answers for, and a password kept only as an argon2id hash (argon2-cffi's ``PasswordHasher``).

A wrong password counts against the account: ``MAX_FAILURES`` in a row lock it for
``LOCK_S`` seconds (a correct password is refused too meanwhile). An unknown name is checked
against a dummy hash, so it takes as long as a known one and the answer is the same: a
sign-in page never tells which names exist. A hash made with weaker parameters than the
current ones is remade on the next good sign-in.

What changes here is also a custody event; the callers write it (the CLI, the pages), naming
who did it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from console.core import ROLES, Account
from console.db import ConsoleDB

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY,
    pw_hash TEXT NOT NULL,
    roles TEXT NOT NULL,            -- JSON list
    devices TEXT NOT NULL,          -- JSON list (empty: every camera)
    disabled INTEGER NOT NULL DEFAULT 0,
    created_us INTEGER NOT NULL,
    changed_us INTEGER NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until_us INTEGER NOT NULL DEFAULT 0
);
"""

NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" is an attack
MAX_FAILURES = 5
LOCK_S = 5 * 60
DEVICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# argon2id takes 64 MiB and ~50 ms a check: a flood of sign-ins, each checked at once on the
# server's threads, would take the dock's memory; so at most this many at a time (the rest wait)
MAX_CONCURRENT_CHECKS = 2
_checks = threading.BoundedSemaphore(MAX_CONCURRENT_CHECKS)


class AccountError(ValueError):
    """A refusal (a bad name, a short password, an unknown account...): one line for a user."""


@dataclass(frozen=True)
class SignInResult:
    """Why a sign-in failed, for the server's log (never for the page)."""

    account: Account | None
    reason: str  # "ok", "unknown", "wrong password", "locked", "disabled"


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name or ""):
        raise AccountError(
            f"bad account name {name!r}: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 64 characters"
        )
    return name


def check_password_text(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password is too short: at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD} characters")
    return password


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    got = frozenset(roles)
    if not got:
        raise AccountError(f"an account needs at least one role ({', '.join(ROLES)})")
    unknown = sorted(got - set(ROLES))
    if unknown:
        raise AccountError(f"unknown role {unknown[0]!r}: one of {', '.join(ROLES)}")
    return got


def check_devices(devices: Iterable[str]) -> frozenset[str]:
    got = frozenset(devices)
    for d in sorted(got):
        if not DEVICE_RE.fullmatch(d):
            raise AccountError(f"bad device id {d!r}")
    return got


class AccountStore:
    """The accounts in the console's database. ``hasher``: argon2-cffi's ``PasswordHasher``
    (its defaults: RFC 9106's low-memory argon2id; tests pass a cheaper one)."""

    def __init__(self, db: ConsoleDB, hasher: PasswordHasher | None = None) -> None:
        self.db = db
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None
        db.ensure(SCHEMA)

    # -- reading

    def get(self, name: str) -> Account | None:
        rows = self.db.query(
            "SELECT name, roles, devices, disabled FROM accounts WHERE name = ?", (name,)
        )
        return _account(rows[0]) if rows else None

    def list(self) -> list[Account]:
        rows = self.db.query("SELECT name, roles, devices, disabled FROM accounts ORDER BY name")
        return [_account(r) for r in rows]

    def locked_until(self, name: str) -> int:
        rows = self.db.query("SELECT locked_until_us FROM accounts WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    # -- changing

    def add(
        self,
        name: str,
        password: str,
        roles: Iterable[str],
        devices: Iterable[str] = (),
        *,
        now_us: int,
    ) -> Account:
        check_name(name)
        role_set = check_roles(roles)
        device_set = check_devices(devices)
        pw_hash = self.hasher.hash(check_password_text(password))
        try:
            with self.db.tx() as c:
                c.execute(
                    "INSERT INTO accounts (name, pw_hash, roles, devices, created_us, changed_us)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name, pw_hash, _j(role_set), _j(device_set), now_us, now_us),
                )
        except sqlite3.IntegrityError:
            raise AccountError(f"an account named {name!r} exists already") from None
        return Account(name, role_set, device_set)

    def disable(self, name: str, now_us: int) -> Account:
        with self.db.tx() as c:
            n = c.execute(
                "UPDATE accounts SET disabled = 1, changed_us = ? WHERE name = ?", (now_us, name)
            ).rowcount
        if not n:
            raise AccountError(f"no account named {name!r}")
        got = self.get(name)
        assert got is not None
        return got

    def set_password(self, name: str, password: str, now_us: int) -> Account:
        pw_hash = self.hasher.hash(check_password_text(password))
        with self.db.tx() as c:
            n = c.execute(
                "UPDATE accounts SET pw_hash = ?, changed_us = ?, failures = 0,"
                " locked_until_us = 0 WHERE name = ?",
                (pw_hash, now_us, name),
            ).rowcount
        if not n:
            raise AccountError(f"no account named {name!r}")
        got = self.get(name)
        assert got is not None
        return got

    # -- signing in

    def check_password(self, name: str, password: str, now_us: int) -> Account | None:
        """The account when ``password`` is its password and it may sign in, else None."""
        return self.sign_in(name, password, now_us=now_us).account

    def sign_in(self, name: str, password: str, now_us: int) -> SignInResult:
        """Like ``check_password``, with the reason of a refusal (for the server's log)."""
        rows = self.db.query(
            "SELECT pw_hash, disabled, locked_until_us FROM accounts WHERE name = ?", (name,)
        )
        password = password[:MAX_PASSWORD]
        if not rows:
            self._verify(self._dummy_hash(), password)  # the same time as a known name
            return SignInResult(None, "unknown")
        pw_hash, disabled, locked_until = rows[0]
        if locked_until > now_us:
            self._verify(self._dummy_hash(), password)
            return SignInResult(None, "locked")
        if not self._verify(pw_hash, password):
            return SignInResult(None, self._count_failure(name, now_us))
        if disabled:
            return SignInResult(None, "disabled")
        self._signed_in(name, pw_hash, password)
        return SignInResult(self.get(name), "ok")

    def _verify(self, pw_hash: str, password: str) -> bool:
        with _checks:
            try:
                return self.hasher.verify(pw_hash, password)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = self.hasher.hash("not anybody's password")
        return self._dummy

    def _count_failure(self, name: str, now_us: int) -> str:
        with self.db.tx() as c:
            (failures,) = c.execute(
                "SELECT failures FROM accounts WHERE name = ?", (name,)
            ).fetchone()
            failures += 1
            if failures >= MAX_FAILURES:
                c.execute(
                    "UPDATE accounts SET failures = 0, locked_until_us = ? WHERE name = ?",
                    (now_us + LOCK_S * 1_000_000, name),
                )
                return f"wrong password ({MAX_FAILURES} in a row: locked for {LOCK_S} s)"
            c.execute("UPDATE accounts SET failures = ? WHERE name = ?", (failures, name))
        return "wrong password"

    def _signed_in(self, name: str, pw_hash: str, password: str) -> None:
        new_hash = self.hasher.hash(password) if self.hasher.check_needs_rehash(pw_hash) else None
        with self.db.tx() as c:
            c.execute(
                "UPDATE accounts SET failures = 0, locked_until_us = 0,"
                " pw_hash = COALESCE(?, pw_hash) WHERE name = ?",
                (new_hash, name),
            )


def _j(items: frozenset[str]) -> str:
    return json.dumps(sorted(items))


def _account(row: tuple) -> Account:
    name, roles, devices, disabled = row
    return Account(
        name, frozenset(json.loads(roles)), frozenset(json.loads(devices)), bool(disabled)
    )
