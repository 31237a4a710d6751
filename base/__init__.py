"""The vocabulary every layer shares, in the standard library only.

``base.packets`` (the packet model), ``base.clock`` (the injected clocks), ``base.formats``
(stream formats) and ``base.sink`` (the segment-sink interface). Nothing here imports
anything of bwv's other packages nor any third-party module: ``pre_record``, ``gpio``,
``crypto``, ``capture`` and ``dock`` all stand on it (README, "Architecture").
"""
