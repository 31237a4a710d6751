// Per recording: segment indices with none missing, signing order, the end records, the
// statuses (docs/evidence-format.md, "Checks" 5 and "Verdicts").

const MAX_MISSING_LISTED = 1000; // missing segments listed one by one past the last present

function missingSegment(rec, idx, detail, chunks = []) {
  return { recording_id: rec, segment_index: idx, status: "missing", file: null, manifest: null,
    manifest_seq: null, truncated: true, decrypted: null, chunks, detail };
}

export { missingSegment };

/** Adds the missing segments to `segments` (sorted) and returns the recordings' reports. */
export function checkRecordings(ctx, segments) {
  const chain = ctx.chain.records.map((e) => e.record);
  const ids = new Set([...chain.map((r) => r.recording_id).filter((x) => x !== undefined),
    ...segments.map((s) => s.recording_id).filter((x) => x !== null && x !== undefined)]);
  const out = [];
  for (const id of [...ids].sort()) {
    const ms = chain.filter((r) => r.type === "manifest" && r.recording_id === id);
    const ends = chain.filter((r) => r.type === "end" && r.recording_id === id);
    missingSegments(ctx, id, ends, segments);
    signingOrder(ctx, id, ms);
    endRecords(ctx, id, ms, ends);
    out.push(verdict(ctx, id, ms, ends, segments));
  }
  segments.sort((a, b) => (a.recording_id < b.recording_id ? -1 : a.recording_id > b.recording_id
    ? 1 : (a.segment_index ?? -1) - (b.segment_index ?? -1)));
  return out;
}

function missingSegments(ctx, id, ends, segments) {
  const listed = new Set(segments.filter((s) => s.recording_id === id
    && s.segment_index !== null).map((s) => s.segment_index));
  const top = Math.max(-1, ...listed, ...ends.map((e) => e.segment_count - 1));
  const limit = Math.min(top, Math.max(0, ...listed) + MAX_MISSING_LISTED);
  for (let i = 0; i <= limit; i++) {
    if (listed.has(i)) continue;
    segments.push(missingSegment(id, i, "neither manifest, file nor trail record of this "
      + "segment is here"));
    ctx.find("missing", `segment ${id}/${i} is missing`, { recording_id: id, segment_index: i });
  }
}

function signingOrder(ctx, id, ms) {
  let last = -1;
  for (const m of ms) {
    if (m.segment_index < last) {
      ctx.find("reordered", `segment ${m.segment_index} was signed after segment ${last}`,
        { seq: m.seq, recording_id: id });
    }
    last = Math.max(last, m.segment_index);
  }
}

function endRecords(ctx, id, ms, ends) {
  for (const e of ends) {
    const before = ms.filter((m) => m.seq < e.seq).length;
    if (before !== e.segment_count) {
      ctx.find("missing", `end record ${e.seq} counts ${e.segment_count} segments, ${before} `
        + "manifests precede it", { recording_id: id, seq: e.seq });
    }
    if (e.reason !== "stopped" || e.recovered) {
      ctx.find("ended_early", `recording ended: ${e.reason}`
        + (e.recovered ? " (found open after a restart)" : ""), { recording_id: id, seq: e.seq });
    }
  }
}

function verdict(ctx, id, ms, ends, segments) {
  const lastEnd = ends[ends.length - 1];
  const lastM = ms[ms.length - 1];
  let status;
  if (!lastEnd || (lastM && lastM.seq > lastEnd.seq)) {
    status = "cut_short";
    ctx.find("cut_short", "no end-of-recording record after its last segment",
      { recording_id: id });
  } else if (lastEnd.reason !== "stopped" || lastEnd.recovered) status = "ended_early";
  else status = "complete";
  const mine = segments.filter((s) => s.recording_id === id);
  if (status === "complete" && mine.some((s) => s.status !== "authentic" || s.truncated)) {
    status = "incomplete";
  }
  const first = ms[0];
  return { recording_id: id, status, end_reason: lastEnd ? lastEnd.reason : null,
    segments: [...new Set(mine.map((s) => s.segment_index).filter((x) => x !== null))]
      .sort((a, b) => a - b),
    wall_start_us: first ? first.wall_start_us : null,
    wall_end_us: lastM ? lastM.wall_end_us : null,
    wall_quality: first ? first.wall_quality : null,
    clock_sync_seq: first ? first.clock_sync_seq ?? null : null,
    recorded_after_us: null, recorded_before_us: null };
}
