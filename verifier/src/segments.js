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

/** Parse a stored segment's header and chunks: {header, context, chunks, problem} or {error}. */
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
  const { chunks, problem } = parseChunks(b, 116 + n);
  return { header: b.subarray(0, 116 + n), context, chunks, problem };
}

/** The framed chunks of b from start: {chunks, problem (trailing bytes that are no chunk)}. */
export function parseChunks(b, start) {
  const chunks = [];
  let pos = start;
  while (pos < b.length) {
    if (pos + 4 > b.length) return { chunks, problem: `torn chunk length at offset ${pos}` };
    const len = u32(b, pos);
    if (len < 17) return { chunks, problem: `impossible chunk length ${len} at offset ${pos}` };
    if (pos + 4 + len > b.length) {
      return { chunks, problem: `chunk at offset ${pos} runs past the end of the file` };
    }
    chunks.push(b.subarray(pos + 4, pos + 4 + len));
    pos += 4 + len;
  }
  return { chunks, problem: null };
}

/** Indices (into values) of one longest strictly increasing subsequence (patience sort). */
function lis(values) {
  const tails = [];
  const tailsAt = [];
  const back = new Array(values.length).fill(-1);
  values.forEach((v, i) => {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tails[mid] < v) lo = mid + 1;
      else hi = mid;
    }
    tails[lo] = v;
    tailsAt[lo] = i;
    back[i] = lo ? tailsAt[lo - 1] : -1;
  });
  const out = new Set();
  for (let i = tailsAt.length ? tailsAt[tailsAt.length - 1] : -1; i >= 0; i = back[i]) out.add(i);
  return out;
}

/**
 * Line up piece hashes with the signed chunks ("Checks", 3). signed: [{chunk, kind, sha}] in
 * signed order; known: Map sha -> where else it is signed. The longest run in signed order is
 * authentic, other signed pieces reordered; an unknown piece in a signed chunk's place altered
 * (substituted when signed elsewhere); a listed chunk not found missing; a second copy
 * duplicated; other pieces unsigned (or substituted). Returns {chunks, extra}:
 * [{chunk, position, kind, status, detail}] for the signed chunks in order, then the rest.
 */
export function lineUp(signed, hashes, known = new Map()) {
  const index = new Map();
  signed.forEach((c, j) => index.set(c.sha, j));
  const firstAt = new Map();
  const dups = [];
  const pairs = [];
  hashes.forEach((h, i) => {
    const j = index.get(h);
    if (j === undefined) return;
    if (firstAt.has(j)) dups.push(i);
    else {
      firstAt.set(j, i);
      pairs.push([i, j]);
    }
  });
  const inOrder = lis(pairs.map(([, j]) => j));
  const reports = new Map();
  pairs.forEach(([i, j], n) => {
    const status = inOrder.has(n) ? "authentic" : "reordered";
    reports.set(j, { chunk: signed[j].chunk, position: i, kind: signed[j].kind, status,
      detail: status === "reordered" ? `found at position ${i}` : "" });
  });
  const used = new Set([...pairs.map(([i]) => i), ...dups]);
  const free = new Set(hashes.map((_, i) => i).filter((i) => !used.has(i)));
  signed.forEach((c, j) => {
    if (reports.has(j)) return;
    if (free.has(j)) {
      free.delete(j);
      const where = known.get(hashes[j]);
      reports.set(j, { chunk: c.chunk, position: j, kind: c.kind,
        status: where ? "substituted" : "altered", detail: where ? `is ${where}` : "" });
    } else {
      reports.set(j, { chunk: c.chunk, position: null, kind: c.kind, status: "missing",
        detail: "" });
    }
  });
  const extra = [];
  for (const i of free) {
    const where = known.get(hashes[i]);
    extra.push({ chunk: null, position: i, kind: "unknown",
      status: where ? "substituted" : "unsigned", detail: where ? `is ${where}` : "" });
  }
  for (const i of dups) {
    extra.push({ chunk: null, position: i, kind: "unknown", status: "duplicated",
      detail: `a copy of chunk ${index.get(hashes[i])}` });
  }
  extra.sort((a, b) => a.position - b.position);
  return { chunks: signed.map((_, j) => reports.get(j)), extra };
}

export async function hashAll(pieces) {
  return Promise.all(pieces.map((p) => sha256hex(p)));
}
