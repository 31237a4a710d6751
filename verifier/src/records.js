// Signed records: schema, canonical form, key id, the signature (Ed25519 or ECDSA P-256, the
// record's "suite") with the domain string (docs/evidence-format.md, "Signed records",
// "Version 4").

import { canonicalBytes, concat, parseCanonical, te, unhex } from "./canonical.js";
import { manifestDigestError } from "./digests.js";
import { ED25519, SUITES, suiteOf, verifySignature } from "./suites.js";

export const VERSION = 4;
const COMMON = ["type", "v", "suite", "device_id", "key_id", "seq", "prev_sha256"];
const CHAIN_TYPES = new Set(["manifest", "end", "time_sync", "clock_step"]); // have "counter"
const FIELDS = {
  trail: ["recording_id", "segment_index", "chunk", "kind", "first_us", "end_us",
    "plain_sha256", "plain_size", "cipher_sha256", "cipher_size", "segment"],
  manifest: ["firmware_version", "recording_id", "segment_index", "start_us", "end_us",
    "wall_start_us", "wall_end_us", "wall_quality", "trigger", "file", "agency_key_id",
    "header_sha256", "stored_digest", "stored_size", "plain_digest", "plain_size", "chunks",
    "truncated", "recovered", "unsigned_tail", "clock_sync_seq"],
  end: ["firmware_version", "recording_id", "reason", "end_us", "segment_count", "recovered"],
  time_sync: ["capture_us", "device_wall_us", "nonce", "dock_time_us", "dock_key_id",
    "dock_signature", "offset_us", "applied", "tsa_token"],
  clock_step: ["capture_us", "from_wall_us", "to_wall_us", "time_sync_seq"],
};
const INTS = new Set(["seq", "segment_index", "chunk", "first_us", "end_us", "plain_size",
  "cipher_size", "start_us", "wall_start_us", "wall_end_us", "stored_size", "segment_count",
  "capture_us", "device_wall_us", "dock_time_us", "offset_us", "from_wall_us", "to_wall_us",
  "time_sync_seq"]);
const HEX64 = /^[0-9a-f]{64}$/;
const HEX16 = /^[0-9a-f]{16}$/;
const CHUNK_FIELDS = ["chunk", "kind", "first_us", "end_us", "plain_sha256", "plain_size",
  "cipher_sha256", "cipher_size", "trail_seq"];

function isInt(x) {
  return Number.isSafeInteger(x);
}

function isObj(x) {
  return x !== null && typeof x === "object" && !Array.isArray(x);
}

function sameKeys(obj, keys) {
  const got = Object.keys(obj).sort();
  const want = [...keys].sort();
  return got.length === want.length && got.every((k, i) => k === want[i]);
}

/** Why a record does not pass its schema, or null. */
export function schemaError(r) {
  if (!isObj(r)) return "not an object";
  if (r.v !== VERSION) {
    return `format version ${JSON.stringify(r.v)}: this reader knows version ${VERSION} only`;
  }
  const extra = FIELDS[r.type];
  if (!extra) return `unknown record type ${JSON.stringify(r.type)}`;
  const keys = [...COMMON, ...extra, ...(CHAIN_TYPES.has(r.type) ? ["counter"] : [])];
  const have = { ...r };
  if (r.type === "manifest" && !("clock_sync_seq" in have)) have.clock_sync_seq = null;
  if (!sameKeys(have, keys)) return "fields missing or extra";
  for (const k of keys) {
    if (INTS.has(k) && !isInt(have[k])) return `${k} is not an integer`;
  }
  if (r.seq < 0) return "negative seq";
  if (!SUITES.includes(r.suite)) return `unknown suite ${JSON.stringify(r.suite)}`;
  if (CHAIN_TYPES.has(r.type) && (r.suite === ED25519 ? r.counter !== null
    : !(isInt(r.counter) && r.counter >= 0))) {
    return `counter ${JSON.stringify(r.counter)}: null for an ${ED25519} record, `
      + "a natural number for a TPM's";
  }
  if (typeof r.device_id !== "string" || !/^[A-Za-z0-9._-]{1,64}$/.test(r.device_id)) {
    return "bad device_id";
  }
  if (typeof r.key_id !== "string" || !HEX16.test(r.key_id)) return "bad key_id";
  if (r.prev_sha256 !== null && !(typeof r.prev_sha256 === "string" && HEX64.test(r.prev_sha256))) {
    return "bad prev_sha256";
  }
  if ("recording_id" in r && !(typeof r.recording_id === "string"
    && /^[A-Za-z0-9_-]{1,64}$/.test(r.recording_id))) return "bad recording_id";
  if (r.type === "manifest") {
    if (!Array.isArray(r.chunks)) return "chunks is not a list";
    for (let i = 0; i < r.chunks.length; i++) {
      const c = r.chunks[i];
      if (!isObj(c) || !sameKeys(c, CHUNK_FIELDS) || c.chunk !== i) return "bad chunk entry";
    }
    if (typeof r.file !== "string") return "bad file";
  }
  return null;
}

/** The domain-separation prefix signed before the canonical record. */
export function domain(type) {
  return te.encode(`bwv:${type}:v${VERSION}\0`);
}

/**
 * Read one signed line (bytes with or without its final newline stripped: `line` here is the
 * line WITHOUT 0x0A). Returns {record, error, reason}. error is null when canonical,
 * schema-valid, with the expected key id, the suite of that key and a valid signature;
 * otherwise reason is the Python reader's: "malformed", "schema", "foreign" (another key, or
 * a suite that is not the key's) or "bad_signature" (a high-S ECDSA signature among them).
 */
export async function readSignedLine(line, pub, kid) {
  let outer;
  try {
    outer = parseCanonical(line);
  } catch (e) {
    return { record: null, error: `not canonical JSON (${e.message})`, reason: "malformed" };
  }
  if (!isObj(outer) || !sameKeys(outer, ["record", "sig"]) || !isObj(outer.record)) {
    return { record: null, error: "not a signed record", reason: "malformed" };
  }
  const r = outer.record;
  if (!(typeof outer.sig === "string" && /^[0-9a-f]{128}$/.test(outer.sig))) {
    return { record: r, error: "sig is not 128 lowercase hex digits", reason: "malformed" };
  }
  const why = schemaError(r) ?? (r.type === "manifest" ? await manifestDigestError(r) : null);
  if (why) return { record: r, error: why, reason: "schema" };
  if (r.key_id !== kid) {
    return { record: r, error: `signed by key ${r.key_id}, not ${kid}`, reason: "foreign" };
  }
  const suite = suiteOf(pub);
  if (r.suite !== suite) {
    return { record: r, error: `signed in suite ${r.suite}, but key ${kid} is ${suite}`,
      reason: "foreign" };
  }
  const sig = unhex(outer.sig);
  if (!(await verifySignature(pub, concat(domain(r.type), canonicalBytes(r)), sig))) {
    return { record: r, error: "signature does not verify", reason: "bad_signature" };
  }
  return { record: r, error: null, reason: null };
}
