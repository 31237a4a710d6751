"""Trusted time: an RFC 3161 time-stamping authority, its client and the token check.

- ``tsa.authority``: the TSA's state folder (a test CA, the TSA's certificate and key, the
  ``openssl ts`` configuration, the serial number) and one reply per query, made by
  ``openssl ts -reply``;
- ``tsa.server``: the TSA over HTTP (``POST /``, ``application/timestamp-query``);
- ``tsa.client``: ``TsaClient(url).timestamp(digest) -> token``;
- ``tsa.verify``: ``verify_token(token, digest, ca_pem) -> genTime in Unix microseconds``;
- ``tsa.testing``: ``running_tsa(tmp_path)``, a real TSA on loopback for tests.

Standard library and ``crypto.durable`` at import; ``cryptography``, ``rfc3161-client`` and
``httpx`` only inside the functions that need them (a camera that never asks for a token
never loads them).
"""
