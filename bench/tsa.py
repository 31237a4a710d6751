"""Trusted-time figures: ``tsa_timestamp_ms``, one RFC 3161 token from bwv's own TSA on
loopback (``openssl ts -reply`` behind tsa/server.py, with the durable serial number), asked
for and received by ``TsaClient`` (median of the calls, in milliseconds); and
``tsa_verify_ms``, ``verify_token`` on such a token."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

from bench import Context, Result, benchmark


@benchmark(
    "tsa",
    description="one RFC 3161 token from the loopback TSA, and its verification",
    figures=("tsa_timestamp_ms", "tsa_verify_ms"),
)
def tsa_timestamp(ctx: Context) -> list[Result]:
    from tsa.client import TsaClient
    from tsa.testing import running_tsa
    from tsa.verify import verify_token

    digest = hashlib.sha256(b"bench").digest()
    with tempfile.TemporaryDirectory() as tmp, running_tsa(Path(tmp)) as (url, ca_pem):
        client = TsaClient(url)
        token = client.timestamp(digest)  # warm: the first query pays for the imports
        verify_token(token, digest, ca_pem)
        n = 5 if ctx.quick else 20
        ask = ctx.median(lambda: client.timestamp(digest), repeat=n)
        check = ctx.median(lambda: verify_token(token, digest, ca_pem), repeat=n)
    return [
        Result("tsa_timestamp_ms", ask * 1000, "ms", detail="POST, openssl ts -reply, fsync"),
        Result("tsa_verify_ms", check * 1000, "ms"),
    ]
