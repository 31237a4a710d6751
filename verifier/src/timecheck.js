// The time check (docs/evidence-format.md, "The time check", steps 2-6; T1 is the log's).

import { canonicalBytes, ed25519Verify, keyId, unhex } from "./canonical.js";

async function syncStatus(r, dockPub, dockKid) {
  if (!dockPub) return "unchecked";
  if (r.dock_key_id !== dockKid) return "other_dock";
  const answer = { type: "bwv-dock-time-v1", device_id: r.device_id, nonce: r.nonce,
    device_time_us: r.device_wall_us, dock_time_us: r.dock_time_us, dock_key_id: r.dock_key_id };
  const sig = typeof r.dock_signature === "string" && /^[0-9a-f]{128}$/.test(r.dock_signature)
    ? unhex(r.dock_signature) : null;
  return sig && (await ed25519Verify(dockPub, sig, canonicalBytes(answer))) ? "valid" : "invalid";
}

export async function checkTime(ctx, recordings) {
  const { find, anchors } = ctx;
  const recs = ctx.chain.records.map((e) => e.record);
  const bySeq = new Map(recs.map((r) => [r.seq, r]));
  const dockKid = anchors.dockPub ? await keyId(anchors.dockPub) : null;
  const syncs = [];
  for (const r of recs.filter((x) => x.type === "time_sync")) {
    const status = await syncStatus(r, anchors.dockPub, dockKid);
    if (status === "invalid") {
      find("time_inconsistent", `time sync ${r.seq}: the dock's signature does not verify`,
        { seq: r.seq });
    }
    syncs.push({ seq: r.seq, dock_time_us: r.dock_time_us, offset_us: r.offset_us,
      applied: r.applied, dock_key_id: r.dock_key_id, dock_signature: status,
      tsa_token: r.tsa_token !== null });
  }
  for (const r of recs.filter((x) => x.type === "clock_step")) {
    const s = bySeq.get(r.time_sync_seq);
    if (s === undefined) continue;
    if (s.type !== "time_sync" || s.seq >= r.seq || !s.applied
      || r.to_wall_us - r.from_wall_us !== s.offset_us) {
      find("time_inconsistent", `clock step ${r.seq} applies no applied sync by its offset`,
        { seq: r.seq });
    }
  }
  const applied = recs.filter((x) => x.type === "time_sync" && x.applied);
  const lower = new Map();
  for (const m of recs.filter((x) => x.type === "manifest")) {
    const where = { recording_id: m.recording_id, segment_index: m.segment_index, seq: m.seq };
    if (m.wall_end_us < m.wall_start_us) {
      find("time_inconsistent", `segment ${m.segment_index}: wall end before wall start`, where);
    }
    const named = m.clock_sync_seq;
    if (named !== null && named !== undefined && bySeq.has(named)
      && !applied.some((s) => s.seq === named)) {
      find("time_inconsistent", `clock_sync_seq ${named} names no applied time sync`, where);
    }
    const before = applied.filter((s) => s.seq < m.seq && s.capture_us <= m.start_us);
    const t0 = before.length ? before[before.length - 1].dock_time_us : null;
    lower.set(m, t0);
    if (t0 !== null && m.wall_start_us < t0) {
      find("time_inconsistent", `segment ${m.segment_index}: wall start before the last `
        + "applied dock-signed sync", where);
    }
  }
  for (const rec of recordings) {
    const first = recs.find((x) => x.type === "manifest" && x.recording_id === rec.recording_id);
    rec.recorded_after_us = first ? lower.get(first) : null;
  }
  return { syncs };
}
