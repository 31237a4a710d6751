// Per recording: segment indices with none missing, the end record, the statuses
// (docs/evidence-format.md, "Checks" 4-5 and "Verdicts").

function missingSegment(ctx, rec, idx, detail) {
  const chunks = [];
  if (ctx.trail) {
    for (const t of ctx.trail.bySeq.values()) {
      if (t.recording_id === rec && t.segment_index === idx) {
        chunks.push({ chunk: t.chunk, position: null, kind: t.kind, status: "missing", detail: "" });
      }
    }
    chunks.sort((a, b) => a.chunk - b.chunk);
  }
  return { recording_id: rec, segment_index: idx, status: "missing", file: null, manifest: null,
    manifest_seq: null, truncated: true, decrypted: null, chunks, detail };
}

/** Adds the missing segments to `segments` (sorted) and returns the recordings' reports. */
export function checkRecordings(ctx, segments) {
  const byRec = new Map();
  const recOf = (id) => {
    if (!byRec.has(id)) byRec.set(id, { records: [], trailIdx: new Set() });
    return byRec.get(id);
  };
  for (const e of ctx.chain.records) {
    if (e.record.type === "manifest" || e.record.type === "end") {
      recOf(e.record.recording_id).records.push(e.record);
    }
  }
  if (ctx.trail) {
    for (const t of ctx.trail.bySeq.values()) {
      if (byRec.has(t.recording_id)) byRec.get(t.recording_id).trailIdx.add(t.segment_index);
    }
  }
  const out = [];
  for (const [id, { records, trailIdx }] of byRec) {
    out.push(oneRecording(ctx, id, records, trailIdx, segments));
  }
  segments.sort((a, b) => (a.recording_id < b.recording_id ? -1 : a.recording_id > b.recording_id
    ? 1 : a.segment_index - b.segment_index));
  return out;
}

function oneRecording(ctx, id, records, trailIdx, segments) {
  const manifests = records.filter((r) => r.type === "manifest");
  const ends = records.filter((r) => r.type === "end");
  const have = new Set(manifests.map((r) => r.segment_index));
  const want = new Set([...have, ...trailIdx]);
  const count = Math.max(0, ...ends.map((e) => e.segment_count));
  const top = Math.max(count - 1, ...want);
  for (let i = 0; i <= top; i++) {
    if (have.has(i)) continue;
    const detail = `segment ${id}/${i} is signed (${trailIdx.has(i) ? "in the trail" : "counted"
    }) but has no manifest here`;
    segments.push(missingSegment(ctx, id, i, detail));
    ctx.find("missing", detail, { recording_id: id, segment_index: i });
  }
  const last = records[records.length - 1];
  let status = "complete";
  const lastEnd = ends[ends.length - 1];
  if (!last || last.type === "manifest") {
    status = "cut_short";
    ctx.find("cut_short", `recording ${id}: no end record after its last segment`,
      { recording_id: id });
  } else if (lastEnd.reason !== "stopped" || lastEnd.recovered) {
    status = "ended_early";
    ctx.find("ended_early", `recording ${id} ended: ${lastEnd.reason}`
      + (lastEnd.recovered ? " (by recovery)" : ""), { recording_id: id, seq: lastEnd.seq });
  }
  for (const e of ends) {
    const before = manifests.filter((m) => m.seq < e.seq).length;
    if (before !== e.segment_count) {
      ctx.find("missing", `end record ${e.seq} counts ${e.segment_count} segments, `
        + `${before} manifests precede it`, { recording_id: id, seq: e.seq });
    }
  }
  const mine = segments.filter((s) => s.recording_id === id);
  const indices = mine.map((s) => s.segment_index).sort((a, b) => a - b);
  const whole = mine.every((s) => s.status === "authentic" && !s.truncated);
  if (status === "complete" && !whole) status = "incomplete";
  const first = manifests[0];
  const lastM = manifests[manifests.length - 1];
  return { recording_id: id, status, end_reason: lastEnd ? lastEnd.reason : null,
    segments: indices,
    wall_start_us: first ? first.wall_start_us : null,
    wall_end_us: lastM ? lastM.wall_end_us : null,
    wall_quality: first ? first.wall_quality : null,
    clock_sync_seq: first ? first.clock_sync_seq ?? null : null,
    recorded_after_us: null, recorded_before_us: null };
}
