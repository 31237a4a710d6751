// Each manifest's segment: its stored file or its MP4, chunk by chunk; the trail's agreement;
// the agency key id; files no manifest names (docs/evidence-format.md, "Checks" 3, 4, 6).

import { sha256hex } from "./canonical.js";
import { storedDigest } from "./digests.js";
import { missingSegment } from "./recordings.js";
import { hashAll, lineUp, parseChunks, parseStored, splitBoxes, splitSizes } from "./segments.js";

const TRAIL_FIELDS = ["kind", "first_us", "end_us", "plain_sha256", "plain_size",
  "cipher_sha256", "cipher_size"];

function worst(statuses) {
  for (const s of ["substituted", "reordered"]) if (statuses.has(s)) return s;
  return "altered";
}

function mp4Name(file) {
  return file.replace(/\.bwvseg$/, "") + ".mp4";
}

function segReport(r, status, file, m) {
  return { recording_id: r.recording_id, segment_index: r.segment_index, status, file,
    manifest: m ? m.file : null, manifest_seq: r.seq ?? null, truncated: !!r.truncated,
    decrypted: null, chunks: [], detail: "" };
}

function allChunks(r, status, plain = false) {
  return r.chunks.map((c) => ({ chunk: c.chunk,
    position: status === "missing" || (plain && c.kind === "final") ? null : c.chunk,
    kind: c.kind, status, detail: "" }));
}

async function checkPlain(ctx, m, rep, bytes) {
  const r = m.record;
  const signed = r.chunks.filter((c) => c.kind !== "final");
  const signedSet = new Set(r.chunks.map((c) => c.plain_sha256));
  const boxes = splitBoxes(bytes);
  const byBox = await hashAll(boxes.pieces.filter((p) => p.length));
  const sizes = splitSizes(bytes, signed.map((c) => c.plain_size));
  const bySize = await hashAll(sizes);
  const count = (hs) => hs.filter((h) => signedSet.has(h)).length;
  const useBoxes = count(byBox) >= count(bySize);
  const hashes = useBoxes ? byBox : bySize;
  const { chunks, extra } = lineUp(
    signed.map((c) => ({ chunk: c.chunk, kind: c.kind, sha: c.plain_sha256 })), hashes,
    ctx.knownPlain);
  const finals = r.chunks.filter((c) => c.kind === "final").map((c) => ({ chunk: c.chunk,
    position: null, kind: "final", status: "authentic", detail: "no bytes" }));
  rep.chunks = [...chunks, ...finals, ...extra];
  if (useBoxes && boxes.cut) {
    rep.chunks.push({ chunk: null, position: hashes.length, kind: "unknown", status: "altered",
      detail: `${boxes.cut.length} bytes: the file ends inside an MP4 box (cut short)` });
  }
  if (rep.chunks.every((c) => c.status === "authentic")) return;
  const owners = new Set(hashes.map((h) => ctx.plainOwner.get(h) ?? null));
  if (owners.size === 1 && !owners.has(null)) {
    const o = [...owners][0];
    if (o !== r) {
      markAll(rep, o.recording_id === r.recording_id ? "reordered" : "substituted",
        `file holds ${o.recording_id}/${o.segment_index}`);
      ctx.find(rep.status, `${rep.file} holds segment ${o.recording_id}/${o.segment_index}`,
        where(r, rep.file));
      return;
    }
  }
  badChunks(ctx, r, rep);
}

function where(r, file) {
  return { file, recording_id: r.recording_id, segment_index: r.segment_index };
}

function badChunks(ctx, r, rep) {
  const bad = rep.chunks.filter((c) => c.status !== "authentic");
  if (!bad.length) return;
  rep.status = worst(new Set(bad.map((c) => c.status)));
  for (const c of bad) {
    const kind = c.status === "duplicated" ? "duplicate" : c.status;
    ctx.find(kind, `chunk ${c.chunk ?? "extra at " + c.position}: ${c.status}`, where(r, rep.file));
  }
}

function markAll(rep, status, detail) {
  rep.status = status;
  for (const c of rep.chunks) {
    c.status = status;
    c.detail = detail;
  }
}

/** The stored file is byte for byte another segment a manifest here signs (by stored digest). */
function holdsOtherStored(ctx, r, rep, digest) {
  if (digest === null) return false;
  const o = ctx.manifests.map((e) => e.record).find((x) => x.stored_digest === digest);
  if (!o || o.seq === r.seq) return false;
  rep.status = o.recording_id === r.recording_id ? "reordered" : "substituted";
  rep.chunks = r.chunks.map((c) => ({ chunk: c.chunk, position: null, kind: c.kind,
    status: rep.status, detail: `file holds ${o.recording_id}/${o.segment_index}` }));
  ctx.find(rep.status, `${rep.file} holds segment ${o.recording_id}/${o.segment_index}`,
    where(r, rep.file));
  return true;
}

/** No chunk is the signed one and the header names another device, recording or segment. */
function fromElsewhere(ctx, r, rep, c) {
  if (!c || rep.chunks.some((x) => x.status === "authentic")) return false;
  const foreign = c.device_id !== r.device_id || c.key_id !== r.key_id;
  if (foreign || c.recording_id !== r.recording_id) {
    markAll(rep, "substituted", foreign ? `from device ${c.device_id} key ${c.key_id}`
      : `from recording ${c.recording_id}`);
    ctx.find("substituted", `${rep.file} is a segment from another ${foreign ? "device"
      : "recording"}`, where(r, rep.file));
    return true;
  }
  if (c.segment_index !== r.segment_index) {
    markAll(rep, "reordered", `holds segment ${c.segment_index}`);
    ctx.find("reordered", `${rep.file} holds segment ${c.segment_index}`, where(r, rep.file));
    return true;
  }
  return false;
}

async function checkStored(ctx, m, rep, bytes) {
  const r = m.record;
  const digest = await storedDigest(bytes);
  const parsed = parseStored(bytes);
  const headerSha = parsed.error ? null : await sha256hex(parsed.header);
  if (!parsed.error && headerSha === r.header_sha256) {
    if (parsed.context.agency_key_id !== r.agency_key_id) {
      ctx.find("altered", "the signed header's agency_key_id is not its manifest's",
        where(r, rep.file));
    }
    ctx.headerAgency.set(r, parsed.context.agency_key_id);
  }
  if (digest !== null && digest === r.stored_digest && bytes.length === r.stored_size) {
    rep.chunks = r.chunks.map((c) => ({ chunk: c.chunk, position: c.chunk, kind: c.kind,
      status: "authentic", detail: "" }));
    return;
  }
  if (holdsOtherStored(ctx, r, rep, digest)) return;
  let chunks;
  let problem;
  let hsha = headerSha;
  if (parsed.error) {
    let start = r.stored_size - r.chunks.reduce((a, c) => a + 4 + c.cipher_size, 0);
    start = Math.max(0, Math.min(start, bytes.length));
    ({ chunks, problem } = parseChunks(bytes, start));
    ctx.find("altered", `header unreadable: ${parsed.error}`, where(r, rep.file));
    hsha = await sha256hex(bytes.subarray(0, start));
  } else ({ chunks, problem } = parsed);
  const { chunks: signed, extra } = lineUp(
    r.chunks.map((x) => ({ chunk: x.chunk, kind: x.kind, sha: x.cipher_sha256 })),
    await hashAll(chunks), ctx.knownCipher);
  rep.chunks = [...signed, ...extra];
  if (fromElsewhere(ctx, r, rep, parsed.error ? null : parsed.context)) return;
  const bad = rep.chunks.filter((x) => x.status !== "authentic");
  rep.status = worst(new Set(bad.map((x) => x.status)));
  if (hsha !== r.header_sha256) {
    ctx.find("altered", "the header (context, sealed key, stream header) was altered",
      where(r, rep.file));
  }
  for (const c of bad) {
    const kind = c.status === "duplicated" ? "duplicate" : c.status;
    ctx.find(kind, `${c.chunk !== null ? "chunk " + c.chunk : "position " + c.position}: `
      + c.status, where(r, rep.file));
  }
  if (problem) ctx.find("altered", `stored file: ${problem}`, where(r, rep.file));
  if (!bad.length && hsha === r.header_sha256 && !problem) {
    ctx.find("altered", "stored file differs from the signed hash", where(r, rep.file));
  }
}

/** The trail's word on each chunk (when the trail is given). */
function checkTrail(ctx, r, rep) {
  const trail = ctx.trail;
  if (!trail) return;
  for (const c of r.chunks) {
    if (c.trail_seq < trail.first) continue; // signed before the trail given starts
    const t = trail.bySeq.get(c.trail_seq);
    if (!t) {
      if (!ctx.reportedTrail.has(c.trail_seq)) {
        ctx.reportedTrail.add(c.trail_seq);
        ctx.find("trail_missing", `chunk ${c.chunk}'s trail_seq ${c.trail_seq} is not among the `
          + "lines given", { ...where(r, "trail.jsonl"), seq: c.trail_seq });
      }
      continue;
    }
    const agrees = t.recording_id === r.recording_id && t.segment_index === r.segment_index
      && t.chunk === c.chunk && TRAIL_FIELDS.every((k) => t[k] === c[k])
      && (c.chunk !== 0 || (t.segment && t.segment.header_sha256 === r.header_sha256));
    if (!agrees) {
      const rc = rep.chunks.find((x) => x.chunk === c.chunk);
      if (rc && rc.status === "authentic") {
        rc.status = "unsigned";
        rc.detail = `trail line ${c.trail_seq} says otherwise`;
        rep.status = rep.status === "authentic" ? "altered" : rep.status;
        ctx.find("unsigned", `chunk ${c.chunk}: trail line ${c.trail_seq} says otherwise`,
          where(r, rep.file));
      }
    }
  }
}

/** Bytes after the last signed chunk, set aside (`unsigned_tail`). */
async function unsignedTail(ctx, r, rep) {
  const tail = r.unsigned_tail;
  if (!tail || typeof tail !== "object" || typeof tail.file !== "string") return;
  const w = where(r, null);
  const pos0 = r.chunks.length;
  const name = [...ctx.files.keys()].sort().find((n) => SET_ASIDE.test(n)
    && n.slice(n.lastIndexOf("/") + 1) === tail.file);
  if (!name) {
    rep.chunks.push({ chunk: null, position: pos0, kind: "unknown", status: "unsigned",
      detail: `${tail.size} bytes set aside in ${tail.file} (file not given)` });
    ctx.find("missing", `set-aside unsigned bytes ${tail.file} not given`,
      { ...w, file: `segments/${tail.file}` });
  } else {
    ctx.named.add(name);
    const data = ctx.files.get(name);
    const { chunks, problem } = parseChunks(data, 0);
    chunks.forEach((c, i) => rep.chunks.push({ chunk: null, position: pos0 + i, kind: "unknown",
      status: "unsigned", detail: `${c.length} bytes, not signed (in ${name})` }));
    if (problem) {
      rep.chunks.push({ chunk: null, position: pos0 + chunks.length, kind: "unknown",
        status: "unsigned", detail: `a torn chunk (in ${name})` });
    }
    if ((await sha256hex(data)) !== tail.sha256 || data.length !== tail.size) {
      ctx.find("altered", "set-aside bytes differ from what the manifest recorded",
        { ...w, file: name });
    }
  }
  ctx.find("unsigned", `${tail.size} bytes after the last signed chunk were never signed (set `
    + `aside in ${tail.file})`, { ...w, file: rep.file });
}

export async function checkSegment(ctx, m) {
  const r = m.record;
  ctx.headerAgency ??= new Map();
  ctx.named ??= new Set();
  const stored = `segments/${r.file}`;
  const mp4 = mp4Name(r.file);
  ctx.named.add(stored);
  ctx.named.add(mp4);
  let rep;
  if (ctx.files.has(stored)) {
    rep = segReport(r, "authentic", stored, m);
    await checkStored(ctx, m, rep, ctx.files.get(stored));
  } else if (ctx.files.has(mp4)) {
    rep = segReport(r, "authentic", mp4, m);
    await checkPlain(ctx, m, rep, ctx.files.get(mp4));
  } else {
    rep = segReport(r, "missing", stored, m);
    rep.chunks = allChunks(r, "missing");
    ctx.find("missing", `segment ${r.recording_id}/${r.segment_index}: neither ${stored} nor `
      + `${mp4} is given`, where(r, stored));
  }
  if (rep.status !== "missing") checkTrail(ctx, r, rep);
  if (r.truncated) {
    ctx.find("truncated", "the manifest says the segment was cut (no final chunk)",
      { ...where(r, rep.file), seq: r.seq });
  }
  await unsignedTail(ctx, r, rep);
  if (ctx.agencyKid) {
    const h = ctx.headerAgency.get(r);
    if (r.agency_key_id !== ctx.agencyKid || (h && h !== ctx.agencyKid)) {
      ctx.find("wrong_agency_key", `segment sealed to agency key ${r.agency_key_id}, not `
        + ctx.agencyKid, { ...where(r, m.file), seq: r.seq });
    }
  }
  return rep;
}

const SET_ASIDE = /^segments\/[^/]+\.bwvseg\.unsigned(\.[0-9]+)?$/;
const STORED = /^segments\/[^/]+\.bwvseg$/;

/** Segments signed only in the trail: their stored file `unsigned`, else `missing`. */
export async function trailOnly(ctx, segments) {
  if (!ctx.trail) return;
  const have = new Set(ctx.manifests.map((e) => `${e.record.recording_id}\u0000${e.record.segment_index}`));
  const groups = new Map();
  const seen = new Set();
  for (const t of [...ctx.trail.bySeq.values()]) {
    const k = `${t.recording_id}\u0000${t.segment_index}`;
    const ck = `${k}\u0000${t.chunk}`;
    if (have.has(k) || seen.has(ck)) continue;
    seen.add(ck);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(t);
  }
  const keys = [...groups.keys()].sort((a, b) => {
    const [ra, ia] = a.split("\u0000");
    const [rb, ib] = b.split("\u0000");
    return ra < rb ? -1 : ra > rb ? 1 : Number(ia) - Number(ib);
  });
  for (const k of keys) {
    const recs = groups.get(k).sort((a, b) => a.chunk - b.chunk);
    const { recording_id: id, segment_index: idx } = recs[0];
    const w = { recording_id: id, segment_index: idx };
    const cand = [...ctx.files.keys()].sort().find((n) => {
      if (!STORED.test(n) || ctx.named.has(n)) return false;
      const p = parseStored(ctx.files.get(n));
      return !p.error && p.context.recording_id === id && p.context.segment_index === idx
        && p.context.key_id === ctx.kid;
    });
    if (!cand) {
      segments.push(missingSegment(id, idx, "signed in the trail, but neither file nor "
        + "manifest given", recs.map((t) => ({ chunk: t.chunk, position: null, kind: t.kind,
        status: "missing", detail: "" }))));
      ctx.find("missing", `segment ${id}/${idx} is in the trail but neither its file nor its `
        + "manifest is here", w);
      continue;
    }
    ctx.named.add(cand);
    const p = parseStored(ctx.files.get(cand));
    const { chunks, extra } = lineUp(recs.map((t, j) => ({ chunk: j, kind: t.kind,
      sha: t.cipher_sha256 })), await hashAll(p.chunks), ctx.knownCipher);
    segments.push({ recording_id: id, segment_index: idx, status: "unsigned", file: cand,
      manifest: null, manifest_seq: null, truncated: true, decrypted: null,
      chunks: [...chunks, ...extra],
      detail: "no manifest: the segment was never closed, or its manifest is missing" });
    ctx.find("unsigned", `segment ${id}/${idx} has no manifest (chunks are checked against the `
      + "trail only)", { ...w, file: cand });
  }
}

/** MP4s, stored files and set-aside bytes no manifest names. */
export async function leftovers(ctx, segments) {
  const stored = new Map(ctx.manifests.map((e) => [e.record.stored_digest, e.record]));
  for (const name of [...ctx.files.keys()].sort()) {
    if (ctx.named.has(name)) continue;
    const data = ctx.files.get(name);
    if (/^[^/]+\.mp4$/.test(name)) {
      ctx.find("unsigned", "an MP4 that no manifest here names", { file: name });
    } else if (SET_ASIDE.test(name)) {
      ctx.find("unsigned", "set-aside bytes that no manifest names", { file: name });
    } else if (STORED.test(name)) {
      const digest = await storedDigest(data);
      const m = digest === null ? undefined : stored.get(digest);
      if (m) {
        ctx.find("duplicate", `a copy of segment ${m.recording_id}/${m.segment_index}`,
          { file: name });
        continue;
      }
      const p = parseStored(data);
      if (p.error) {
        ctx.find("malformed", `unreadable stored segment: ${p.error}`, { file: name });
        continue;
      }
      const c = p.context;
      const foreign = c.key_id !== ctx.kid || (ctx.deviceId && c.device_id !== ctx.deviceId);
      const status = foreign ? "substituted" : "unsigned";
      const detail = foreign ? `a segment of device ${c.device_id} key ${c.key_id}`
        : "no manifest and no trail record covers this segment";
      segments.push({ recording_id: c.recording_id, segment_index: c.segment_index, status,
        file: name, manifest: null, manifest_seq: null, truncated: true, decrypted: null,
        chunks: [], detail });
      ctx.find(status, detail, { file: name, recording_id: c.recording_id,
        segment_index: c.segment_index });
    }
  }
}
