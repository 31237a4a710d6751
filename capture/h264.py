"""Minimal H.264 Annex B helpers: enough to find the parameter sets in a keyframe."""

from __future__ import annotations

NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8


def split_annexb(data: bytes) -> list[bytes]:
    """Split an Annex B byte stream into NAL units (start codes removed)."""
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    nals = []
    for n, s in enumerate(starts):
        if n + 1 < len(starts):
            end = starts[n + 1] - 3
            # a 4-byte start code leaves a trailing zero on the previous NAL
            while end > s and data[end - 1] == 0:
                end -= 1
        else:
            end = len(data)
        nals.append(data[s:end])
    return nals


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F if nal else -1


def parameter_sets(keyframe: bytes) -> bytes:
    """Annex B extradata (SPS and PPS) from a keyframe that repeats its headers.

    Raises ValueError when the keyframe carries none: the encoder must repeat headers on
    every keyframe (picamera2 issue 226), or segments cut from the ring buffer won't play.
    """
    sps = pps = None
    for nal in split_annexb(keyframe):
        t = nal_type(nal)
        if t == NAL_SPS and sps is None:
            sps = nal
        elif t == NAL_PPS and pps is None:
            pps = nal
    if sps is None or pps is None:
        raise ValueError("keyframe has no SPS/PPS: the encoder must repeat headers on keyframes")
    return b"\x00\x00\x00\x01" + sps + b"\x00\x00\x00\x01" + pps
