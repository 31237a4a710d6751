"""The transparency log's primitives, on the standard library and PyNaCl only.

``tlog.merkle`` (RFC 9162 hashing and proofs), ``tlog.note`` (C2SP signed-note),
``tlog.checkpoint`` (C2SP tlog-checkpoint), ``tlog.cosignature`` (C2SP tlog-cosignature,
``cosignature/v1``) and ``tlog.store`` (a durable append-only tree on disk). The dock's log
and the witness (``witness``) are built on them; see docs/evidence-format.md, "The
transparency log".
"""
