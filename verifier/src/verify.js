// bwv exhibit verifier, written from docs/evidence-format.md (version 4).
// verifyBundle(files: Map<name, Uint8Array>, anchors) -> report (the shape of
// `bwv verify --json`): {ok, trusted, device_id, key_id, findings, recordings, segments,
// time_syncs, log?} or, when the bundle could not be checked, {ok: false, error, wanting}.

import { canonicalBytes, ed25519Verify, keyId, parseJson, sha256hex, td, unhex, b64decode }
  from "./canonical.js";
import { readChain, readTrail } from "./chain.js";
import { checkSegment, leftovers, trailOnly } from "./check_segments.js";
import { checkRecordings } from "./recordings.js";
import { checkTime } from "./timecheck.js";
import { checkLog } from "./log.js";
import { ECDSA_P256, isP256Point, suiteOf } from "./suites.js";

export { verifyBundle };

const PAPERS = new Set(["EXHIBIT.md", "report.json", "verify.html", "device.pub",
  "enrollment.json", "receipts.jsonl", "custody.jsonl", "trail.jsonl", "log/checkpoint",
  "log/checkpoint.tsr", "log/proofs.jsonl"]);

function isKnown(name) {
  if (PAPERS.has(name)) return true;
  if (/^manifests\/.+\.json$/.test(name)) return true;
  if (/^[^/]+\.mp4$/.test(name)) return true;
  if (/^segments\/[^/]+\.bwvseg(\.unsigned(\.[0-9]+)?)?$/.test(name)) return true;
  if (/^log\/checkpoints\/[1-9][0-9]*(\.tsr)?$/.test(name)) return true;
  return false;
}

/**
 * A pinned key file: an Ed25519 key (64 hex digits or 44 base64 characters) or a P-256 point
 * (130 hex digits or 88 base64 characters, 0x04 first), whitespace around ignored; or null.
 */
export function readKey(text) {
  const s = (typeof text === "string" ? text : td.decode(text)).trim();
  const b = /^([0-9a-fA-F]{64}|[0-9a-fA-F]{130})$/.test(s) ? unhex(s.toLowerCase()) : b64decode(s);
  return b && suiteOf(b) ? b : null;
}

const DEVICE_PUB_FILE = /^([0-9a-f]{64}|04[0-9a-f]{128})\n$/;

async function trustAnchor(files, anchors) {
  if (anchors.devicePub) {
    const pub = anchors.devicePub;
    if (!suiteOf(pub)) {
      return { error: "the device key is neither an Ed25519 key (32 bytes) nor a P-256 point "
        + "(65 bytes, 0x04 first)" };
    }
    if (suiteOf(pub) === ECDSA_P256 && !(await isP256Point(pub))) {
      return { error: "the device key is not a point on the P-256 curve" };
    }
    return { pub, trusted: `device key ${await keyId(pub)}` };
  }
  if (!anchors.dockPub) return { error: "no trust anchor: give the device's or the dock's public key" };
  const dockKid = await keyId(anchors.dockPub);
  const bad = (why) => ({ notVerified: why, trusted: `dock key ${dockKid} (enrollment)` });
  const entry = files.has("enrollment.json") ? parseJson(files.get("enrollment.json")) : undefined;
  const pubBytes = files.get("device.pub");
  if (!entry || typeof entry !== "object" || !pubBytes) {
    return bad("enrollment.json or device.pub is absent or unreadable");
  }
  const { entry_hash: entryHash, signature, ...body } = entry;
  if (entry.action !== "enrolled") return bad("enrollment.json is not an enrolled entry");
  let bodyHash;
  try {
    bodyHash = await sha256hex(canonicalBytes(body));
  } catch {
    return bad("enrollment.json cannot be encoded");
  }
  if (bodyHash !== entryHash) return bad("enrollment.json: entry_hash is not its body's");
  const sig = b64decode(signature);
  if (!sig || !(await ed25519Verify(anchors.dockPub, sig, unhex(entryHash)))) {
    return bad("enrollment.json: the dock's signature does not verify");
  }
  const pub = readKey(pubBytes);
  if (!pub || !DEVICE_PUB_FILE.test(td.decode(pubBytes))) {
    return bad("device.pub is not 64 (Ed25519) or 130 (P-256) hex digits and a newline");
  }
  if ((await sha256hex(pub)) !== entry.sha256) {
    return bad("device.pub is not the key enrollment.json binds");
  }
  return { pub, trusted: `dock key ${dockKid} (enrollment)` };
}

function finder(findings) {
  return (kind, detail, where = {}) => {
    const f = { kind, detail, file: where.file ?? null, seq: where.seq ?? null,
      recording_id: where.recording_id ?? null, segment_index: where.segment_index ?? null };
    if ("counter" in where) { // a counter finding: the record's counter and its predecessor's
      Object.assign(f, { counter: where.counter, prev_seq: where.prev_seq,
        prev_counter: where.prev_counter });
    }
    findings.push(f);
  };
}

/**
 * Verify an exhibit bundle. files: Map of bundle-relative names to Uint8Array; anchors:
 * {devicePub?, dockPub?, agencyPub?: Uint8Array(32), witnessVkeys?: string[],
 * checkpoint?: Uint8Array}. Never throws: a report with `error` has no per-file part; its
 * `wanting` says NOT VERIFIED (true: the anchor does not establish the device key; bwv exit 1)
 * or could not check (false: no key, unreadable input; bwv exit 2).
 */
async function verifyBundle(files, anchors = {}) {
  try {
    return await verifyInner(files, anchors);
  } catch (e) {
    return { ok: false, trusted: null, device_id: null, key_id: null, findings: [],
      recordings: [], segments: [], time_syncs: [], wanting: false,
      error: `could not check: ${e && e.message ? e.message : e}` };
  }
}

async function verifyInner(files, anchors) {
  const findings = [];
  const find = finder(findings);
  const empty = { ok: false, trusted: null, device_id: null, key_id: null, findings,
    recordings: [], segments: [], time_syncs: [] };
  const anchor = await trustAnchor(files, anchors);
  if (anchor.error) return { ...empty, error: anchor.error, wanting: false };
  if (anchor.notVerified) {
    return { ...empty, trusted: anchor.trusted, error: anchor.notVerified, wanting: true };
  }
  const { pub, trusted } = anchor;
  const kid = await keyId(pub);
  for (const name of [...files.keys()].sort()) {
    if (!isKnown(name)) find("extra", "a file that is no part of the bundle", { file: name });
  }
  const chain = await readChain(files, pub, kid, find);
  const trail = await readTrail(files, pub, kid, find);
  const manifests = chain.records.filter((e) => e.record.type === "manifest");
  const ctx = { files, anchors, find, trail, manifests, chain, reportedTrail: new Set() };
  if (anchors.agencyPub) ctx.agencyKid = await keyId(anchors.agencyPub);
  ctx.plainOwner = new Map();
  ctx.knownPlain = new Map();
  ctx.knownCipher = new Map();
  const setDefault = (map, k, v) => { if (!map.has(k)) map.set(k, v); };
  const label = (r, c) => `${r.recording_id} segment ${r.segment_index} chunk ${c.chunk}`;
  for (const t of trail ? trail.bySeq.values() : []) {
    setDefault(ctx.knownCipher, t.cipher_sha256, label(t, t));
  }
  for (const { record: r } of manifests) {
    for (const c of r.chunks) {
      setDefault(ctx.knownCipher, c.cipher_sha256, label(r, c));
      if (c.kind === "final") continue;
      setDefault(ctx.plainOwner, c.plain_sha256, r);
      setDefault(ctx.knownPlain, c.plain_sha256, label(r, c));
    }
  }
  const segments = [];
  ctx.named = new Set();
  ctx.kid = kid;
  ctx.deviceId = chain.records[0]?.record.device_id ?? null;
  for (const m of manifests) segments.push(await checkSegment(ctx, m));
  await trailOnly(ctx, segments);
  await leftovers(ctx, segments);
  const recordings = checkRecordings(ctx, segments);
  const time = await checkTime(ctx, recordings);
  const out = { ok: false, trusted, device_id: chain.records[0]?.record.device_id ?? null,
    key_id: kid, suite: suiteOf(pub), findings, recordings, segments, time_syncs: time.syncs };
  if (anchors.witnessVkeys && anchors.witnessVkeys.length) {
    out.log = await checkLog(ctx, recordings);
  }
  out.ok = findings.length === 0;
  return out;
}
