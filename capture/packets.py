"""The packet model lives in ``base.packets`` (no third-party imports); kept here for the
simulator, the bench and the tests that import it from capture."""

from base.packets import Packet, Stream

__all__ = ["Packet", "Stream"]
