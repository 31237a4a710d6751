"""The TPM's monotonic counter (an NV index of type TPM_NT_COUNTER): each chain record carries
the value after one increment, so a verifier sees records that were counted but are missing
(storage restored from an older copy, records removed) as a gap.

An NV counter only goes up: TPM2_NV_Increment is the one way to write it. Undefining the index
and defining it again does not start it over: the TPM starts a new counter at (or above) the
highest value any counter on it has had (TPM 2.0 spec part 1, "NV counters"), which the tests
check against swtpm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tpm.connect import TpmError

if TYPE_CHECKING:
    from tpm2_pytss import ESAPI

COUNTER_INDEX = 0x01500042


def counter_public(index: int) -> Any:
    from tpm2_pytss import TPM2_ALG, TPM2_NT, TPM2B_NV_PUBLIC, TPMA_NV, TPMS_NV_PUBLIC

    attrs = (
        TPMA_NV.AUTHWRITE
        | TPMA_NV.AUTHREAD
        | TPMA_NV.NO_DA
        | (TPM2_NT.COUNTER << TPMA_NV.TPM2_NT_SHIFT)
    )
    return TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index, nameAlg=TPM2_ALG.SHA256, attributes=attrs, dataSize=8
        )
    )


def nv_index(esapi: ESAPI, index: int) -> Any | None:
    """The ESYS_TR of the NV index, or None if it is not defined."""
    from tpm2_pytss import TPM2_CAP, TPM2_HT

    _more, data = esapi.get_capability(TPM2_CAP.HANDLES, TPM2_HT.NV_INDEX << 24, 256)
    if index not in list(data.data.handles):
        return None
    return esapi.tr_from_tpmpublic(index)


def is_written(esapi: ESAPI, nv: Any) -> bool:
    from tpm2_pytss import TPMA_NV

    public, _name = esapi.nv_read_public(nv)
    return bool(public.nvPublic.attributes & TPMA_NV.WRITTEN)


def read_counter(esapi: ESAPI, nv: Any) -> int:
    return int.from_bytes(bytes(esapi.nv_read(nv, 8, 0, nv)), "big")


def define_counter(esapi: ESAPI, index: int = COUNTER_INDEX) -> int:
    """Define the counter (owner authorization, the empty one) unless it is there, increment
    it once if it was never written (an unwritten counter cannot be read); its value."""
    from tpm2_pytss import ESYS_TR

    nv = nv_index(esapi, index)
    if nv is None:
        nv = esapi.nv_define_space(b"", counter_public(index), ESYS_TR.OWNER)
    if not is_written(esapi, nv):
        esapi.nv_increment(nv, nv)
    return read_counter(esapi, nv)


class NoCounter(TpmError):
    """The counter's NV index is not defined (``define_counter`` makes it)."""


@dataclass
class TpmCounter:
    """A ``crypto`` ``Counter``: ``next()`` increments the TPM's counter and returns its new
    value. Uses the caller's ESAPI context (closing it is the caller's)."""

    esapi: ESAPI = field(repr=False)
    index: int = COUNTER_INDEX

    def _nv(self) -> Any:
        nv = nv_index(self.esapi, self.index)
        if nv is None:
            raise NoCounter(f"the TPM has no counter at NV index {self.index:#x}")
        return nv

    def next(self) -> int:
        from tpm2_pytss import TSS2_Exception

        try:
            nv = self._nv()
            self.esapi.nv_increment(nv, nv)
            return read_counter(self.esapi, nv)
        except TSS2_Exception as e:
            raise TpmError(f"the TPM did not count ({e})") from None

    def value(self) -> int:
        from tpm2_pytss import TSS2_Exception

        try:
            return read_counter(self.esapi, self._nv())
        except TSS2_Exception as e:
            raise TpmError(f"the TPM's counter cannot be read ({e})") from None
