"""The verifier put together from its rooms, and ``verify``: the whole check of a set of
files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nacl.public import PrivateKey, PublicKey

from crypto.verify.agency import check_agency_keys, expected_agency_key_id
from crypto.verify.chain import ChainRoom
from crypto.verify.inputs import basename, classify, load_segment, read_outbox
from crypto.verify.leftovers import LeftoverRoom
from crypto.verify.plain import PlainRoom
from crypto.verify.recordings import RecordingRoom
from crypto.verify.report import ALTERED, AUTHENTIC, SUBSTITUTED, Finding, Report
from crypto.verify.segments import SegmentRoom
from crypto.verify.timecheck import TimeRoom


class _Verifier(ChainRoom, SegmentRoom, PlainRoom, LeftoverRoom, RecordingRoom, TimeRoom):
    def run(self) -> Report:
        trails, chains = [], []
        for name, data in self.files.items():
            kind = classify(name, data)
            if kind == "trail":
                trails.append((name, data))
            elif kind == "chain":
                chains.append((name, data))
            elif kind in ("segment", "partial"):
                self.segfiles.append(load_segment(name, data, kind == "partial"))
            elif kind == "plain":
                self.plain_files[name] = data
            elif kind == "unsigned":
                self.unsigned_files[basename(name)] = (name, data)
            else:
                self.find("unrecognized", "not a file of the evidence outbox", file=name)
        self.seg_prefix = self._segment_prefix()
        self._read_trails(trails)
        self._read_chain(chains)
        manifests = self._manifests()
        for m in manifests.values():
            for c in m.record["chunks"]:
                self.known_chunks.setdefault(
                    c["cipher_sha256"],
                    f"{m.record['recording_id']} segment {m.record['segment_index']} "
                    f"chunk {c['chunk']}",
                )
            self.manifest_by_stored.setdefault(m.record["stored_digest"], m)
        for m in manifests.values():
            self.segments.append(self._check_manifest(m))
        self._trail_only_segments(manifests)
        self._leftover_files()
        self._leftover_plain()
        recordings = self._recordings(manifests)
        time_syncs = self._check_time(manifests, recordings)
        self.segments.sort(key=lambda s: (s.recording_id or "", s.segment_index or 0, s.file or ""))
        ok = (
            not self.findings
            and all(s.status == AUTHENTIC and not s.truncated for s in self.segments)
            and all(r.status == "complete" for r in recordings)
        )
        return Report(
            ok,
            self.device_id,
            self.key_id,
            self.suite,
            self.segments,
            recordings,
            self.findings,
            time_syncs,
        )

    def _segment_prefix(self) -> str:
        """How the caller names files in the segments directory ("segments/" in an outbox),
        to name the ones that are missing the same way."""
        for f in self.segfiles:
            if "/" in f.name:
                return f.name.rsplit("/", 1)[0] + "/"
        if any(n.startswith("chain/") or "/" in n for n in self.files):
            return "segments/"
        return ""


def verify(
    files: Mapping[str, bytes],
    device_public_key: bytes,
    agency_private_key: PrivateKey | bytes | None = None,
    *,
    device_id: str | None = None,
    first_chain_seq: int = 0,
    first_trail_seq: int = 0,
    check_names: bool = True,
    require_trail: bool = True,
    agency_public_key: PublicKey | bytes | None = None,
    dock_public_key: bytes | None = None,
) -> Report:
    """Verify files given as ``{name: bytes}`` (names relative to the outbox). The agency's
    key (private, or ``agency_public_key`` alone) also checks what each segment is sealed
    to (crypto/verify/agency.py); ``dock_public_key`` checks the dock's signatures in the
    device's time records."""
    agency = agency_private_key
    if agency is not None and not isinstance(agency, PrivateKey):
        agency = PrivateKey(bytes(agency))
    if agency_public_key is None and agency is not None:
        agency_public_key = agency.public_key
    agency_kid = expected_agency_key_id(agency_public_key)

    def run(dev: str | None) -> tuple[Report, _Verifier]:
        v = _Verifier(
            files,
            device_public_key,
            agency,
            dev,
            first_chain_seq,
            first_trail_seq,
            check_names,
            require_trail,
        )
        v.dock_pk = bytes(dock_public_key) if dock_public_key is not None else None
        rep = v.run()
        check_agency_keys(rep, files, agency_kid)
        return rep, v

    report, loose = run(None)
    seen = loose.devices_seen
    damaged = any(f.kind in (ALTERED, "torn", "malformed") for f in report.findings)
    if not seen and loose.other_signers and not damaged:  # the wrong key: one cause
        return _signed_by_others(report, loose.other_signers)
    if device_id is None or seen == {device_id}:
        return report
    if seen and device_id not in seen:  # one cause, one finding (not one per record)
        names = ", ".join(repr(d) for d in sorted(seen))
        report.findings.insert(
            0,
            Finding(
                SUBSTITUTED,
                f"signed as device {names} (key {report.key_id}), not as device "
                f"{device_id!r}: another device's evidence, or the wrong --device-id",
            ),
        )
        report.ok = False
        return report
    return run(device_id)[0]  # some records of the device asked for, some of another


def _signed_by_others(report: Report, signers: set[tuple[str, str]]) -> Report:
    """Nothing is signed by the key given: every other finding follows from that one."""
    who = ", ".join(f"device {d!r} key {k}" for d, k in sorted(signers))
    report.findings = [
        Finding(
            SUBSTITUTED,
            f"nothing here is signed by the key given ({report.key_id}): it is signed by "
            f"{who}; the wrong --device-pub, or another device's evidence",
        )
    ]
    report.recordings = []  # none can be judged without its device's key
    report.ok = False
    return report


def verify_outbox(
    outbox: Path,
    device_public_key: bytes,
    agency_private_key: PrivateKey | bytes | None = None,
    **kw: Any,
) -> Report:
    return verify(read_outbox(outbox), device_public_key, agency_private_key, **kw)
