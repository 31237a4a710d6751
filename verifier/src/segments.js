// Splitting a segment into pieces (MP4 boxes, signed sizes, stored-file chunks) and lining
// them up with a manifest's chunks (docs/evidence-format.md, "Checks" 3 and "Checking a
// decrypted segment").

import { parseCanonical, sha256hex } from "./canonical.js";

function u32(b, o) {
  return ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
}

/** Reading 1: top-level boxes. Returns {pieces: [Uint8Array], cut: Uint8Array|null}. */
export function splitBoxes(b) {
  const boxes = [];
  let pos = 0;
  while (pos + 8 <= b.length) {
    let size = u32(b, pos);
    const type = String.fromCharCode(b[pos + 4], b[pos + 5], b[pos + 6], b[pos + 7]);
    if (size === 1) {
      if (pos + 16 > b.length) break;
      size = u32(b, pos + 8) * 2 ** 32 + u32(b, pos + 12);
      if (size < 16) break;
    } else if (size === 0) {
      size = b.length - pos;
    } else if (size < 8) break;
    if (pos + size > b.length) break;
    boxes.push({ pos, type });
    pos += size;
  }
  const end = pos;
  const starts = boxes.filter((x) => x.type === "moof").map((x) => x.pos);
  const pieces = [];
  const firstMoof = starts.length ? starts[0] : end;
  pieces.push(b.subarray(0, firstMoof));
  for (let i = 0; i < starts.length; i++) {
    pieces.push(b.subarray(starts[i], i + 1 < starts.length ? starts[i + 1] : end));
  }
  return { pieces, cut: end < b.length ? b.subarray(end) : null };
}

/** Reading 2: at the signed plain sizes; the rest is one more piece. */
export function splitSizes(b, sizes) {
  const pieces = [];
  let pos = 0;
  for (const n of sizes) {
    if (pos >= b.length) break;
    pieces.push(b.subarray(pos, Math.min(b.length, pos + n)));
    pos += n;
  }
  if (pos < b.length) pieces.push(b.subarray(pos));
  return pieces;
}

/** Parse a stored segment's header and chunks. Returns {header, context, chunks, cut} or {error}. */
export function parseStored(b) {
  const magic = String.fromCharCode(...b.subarray(0, 6));
  if (b.length < 12 || magic !== "BWVSEG") return { error: "not a stored segment" };
  const version = (b[6] << 8) | b[7];
  if (version !== 2) return { error: `format version ${version}: this reader knows version 2 only` };
  const n = u32(b, 8);
  if (n > 4096 || b.length < 116 + n) return { error: "header cut short" };
  let context;
  try {
    context = parseCanonical(b.subarray(12, 12 + n));
  } catch {
    return { error: "header context unreadable" };
  }
  const keys = ["agency_key_id", "device_id", "key_id", "recording_id", "segment_index",
    "start_us", "wall_start_us", "wall_quality", "trigger"].sort();
  const got = context && typeof context === "object" ? Object.keys(context).sort() : [];
  if (got.join() !== keys.join() || !/^[0-9a-f]{16}$/.test(context.agency_key_id)) {
    return { error: "header context has fields missing or extra" };
  }
  const chunks = [];
  let pos = 116 + n;
  while (pos + 4 <= b.length) {
    const len = u32(b, pos);
    if (len < 17 || pos + 4 + len > b.length) break;
    chunks.push(b.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return { header: b.subarray(0, 116 + n), context, chunks,
    cut: pos < b.length ? b.subarray(pos) : null };
}

/** Longest increasing subsequence of values (indices into the input kept). */
function lisKeep(values) {
  const n = values.length;
  const len = new Array(n).fill(1);
  const prev = new Array(n).fill(-1);
  let best = -1;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) {
      if (values[j] < values[i] && len[j] + 1 > len[i]) {
        len[i] = len[j] + 1;
        prev[i] = j;
      }
    }
    if (best < 0 || len[i] > len[best]) best = i;
  }
  const keep = new Set();
  for (let i = best; i >= 0; i = prev[i]) keep.add(i);
  return keep;
}

/**
 * Line up piece hashes with the signed chunks. signed: [{chunk, kind, sha}] in signed order
 * (the chunks that carry bytes). Returns [{chunk, position, kind, status, detail}] in report
 * order: signed chunks, then the extra ones.
 */
export function lineUp(signed, hashes) {
  const bySha = new Map();
  signed.forEach((c, i) => {
    if (!bySha.has(c.sha)) bySha.set(c.sha, []);
    bySha.get(c.sha).push(i);
  });
  const used = new Set();
  const match = hashes.map((h) => {
    const free = (bySha.get(h) || []).find((i) => !used.has(i));
    if (free === undefined) return bySha.has(h) ? "dup" : null;
    used.add(free);
    return free;
  });
  const matchedPos = [];
  match.forEach((m, p) => { if (typeof m === "number") matchedPos.push(p); });
  const keep = lisKeep(matchedPos.map((p) => match[p]));
  const inRun = new Set([...keep].map((k) => matchedPos[k]));
  const out = signed.map((c) => ({ chunk: c.chunk, position: null, kind: c.kind,
    status: "missing", detail: "" }));
  match.forEach((m, p) => {
    if (typeof m === "number") {
      out[m].position = p;
      out[m].status = inRun.has(p) ? "authentic" : "reordered";
    }
  });
  const extra = [];
  match.forEach((m, p) => {
    if (m === "dup") {
      extra.push({ chunk: null, position: p, kind: "unknown", status: "duplicated", detail: "" });
    } else if (m === null) {
      if (p < out.length && out[p].status === "missing") {
        out[p].status = "altered";
        out[p].position = p;
        out[p].detail = "other bytes in its place";
      } else {
        extra.push({ chunk: null, position: p, kind: "unknown", status: "unsigned", detail: "" });
      }
    }
  });
  return { chunks: out, extra };
}

export async function hashAll(pieces) {
  return Promise.all(pieces.map((p) => sha256hex(p)));
}
