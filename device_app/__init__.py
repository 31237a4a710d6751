"""The device's application: ``bwv run`` wires capture, gpio, crypto and the dock's shipper
together on real hardware. It stands above every other package and nothing but the ``bwv``
command imports it (README, "Architecture")."""
