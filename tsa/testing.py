"""A real RFC 3161 TSA on loopback, for tests: ``with running_tsa(tmp_path) as (url, ca_pem)``.

It is bwv's own TSA (``bwv tsa init`` and the server of ``bwv tsa serve``, in a thread of the
test's process), signing with the real ``openssl ts -reply``: no mock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tsa.init import init_state
from tsa.server import ServerThread


@contextlib.contextmanager
def running_tsa(tmp_path: Path, name: str = "tsa") -> Iterator[tuple[str, bytes]]:
    """A TSA with its state in ``tmp_path / name`` (made if new), served on 127.0.0.1 on a
    free port while the block runs: ``(url, ca_pem)``."""
    result = init_state(Path(tmp_path) / name)
    with ServerThread(result.state.dir) as served:
        yield served.url, result.state.ca_pem
