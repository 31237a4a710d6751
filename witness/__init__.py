"""An independent witness of transparency logs (C2SP tlog-witness), and its client.

``witness.core`` decides (cosign or refuse), ``witness.state`` keeps the state durably,
``witness.server`` serves it over HTTP, ``witness.client`` is what a log (the dock) or a
monitor uses. Built on ``tlog``; see docs/evidence-format.md, "The witness".
"""
