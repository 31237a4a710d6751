"""The TPM's NV counter, on a real (software) TPM: it goes up by exactly one per next(), keeps
its value across a power cycle, and cannot be set back: undefining the index and defining it
again (all that owner authorization allows) starts it above every value it had."""

from __future__ import annotations

from tests.swtpm import SwTpm, swtpm_server  # noqa: F401  (fixture)


def test_next_counts_by_exactly_one(swtpm_server: SwTpm) -> None:  # noqa: F811
    from tpm.counter import TpmCounter, define_counter

    with swtpm_server.open() as esapi:
        first = define_counter(esapi)
        assert first >= 1  # a counter is written (incremented) once before it is read
        counter = TpmCounter(esapi)
        assert counter.value() == first
        got = [counter.next() for _ in range(5)]
        assert got == [first + 1 + i for i in range(5)]
        assert counter.value() == got[-1]
        assert define_counter(esapi) == got[-1]  # defining again changes nothing


def test_the_counter_survives_a_power_cycle(swtpm_server: SwTpm) -> None:  # noqa: F811
    from tpm.counter import TpmCounter, define_counter

    with swtpm_server.open() as esapi:
        define_counter(esapi)
        before = TpmCounter(esapi).next()
    swtpm_server.restart()
    with swtpm_server.open() as esapi:
        counter = TpmCounter(esapi)
        assert counter.value() == before
        assert counter.next() == before + 1


def test_the_counter_cannot_be_set_back(swtpm_server: SwTpm) -> None:  # noqa: F811
    """What a restored SD card cannot do, someone with the owner's authorization cannot do
    either: a counter defined again starts at or above the highest any counter reached."""
    from tpm2_pytss import ESYS_TR

    from tpm.counter import COUNTER_INDEX, TpmCounter, define_counter, nv_index

    with swtpm_server.open() as esapi:
        define_counter(esapi)
        counter = TpmCounter(esapi)
        for _ in range(20):
            high = counter.next()
        esapi.nv_undefine_space(nv_index(esapi, COUNTER_INDEX), ESYS_TR.OWNER)
        assert define_counter(esapi) > high
        assert counter.next() > high + 1


def test_no_counter_is_said_plainly(swtpm_server: SwTpm) -> None:  # noqa: F811
    import pytest

    from tpm.counter import NoCounter, TpmCounter

    with swtpm_server.open() as esapi, pytest.raises(NoCounter, match="0x1500077"):
        TpmCounter(esapi, 0x01500077).next()
