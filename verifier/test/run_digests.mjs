// verifier/src/digests.js (stored digest, plain digest) against the spec's Python reference
// (verifier/test/digests_reference.py, run with python3), and a v4 manifest through
// records.js: the right digests pass, a wrong one or "v": 2 fails its schema.
// Usage: node verifier/test/run_digests.mjs  (python3 on PATH, or BWV_PYTHON=/path/python)
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { canonicalBytes, concat, hex, keyId, sha256hex, te, unhex } from "../src/canonical.js";
import { manifestDigestError, plainDigest, plainDigestOf, storedDigest, storedDigestOf }
  from "../src/digests.js";
import { domain, readSignedLine } from "../src/records.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ref = JSON.parse(execFileSync(process.env.BWV_PYTHON || "python3",
  [join(HERE, "digests_reference.py")], { encoding: "utf8" }));
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
};

for (const [name, f] of Object.entries(ref.files)) {
  const got = await storedDigest(unhex(f.hex));
  check(got === f.stored_digest, `storedDigest(${name}) = ${got}, reference ${f.stored_digest}`);
}
const closed = unhex(ref.files.closed.hex);
check(ref.files.closed.stored_digest !== null && ref.files["no chunks"].stored_digest !== null,
  "the reference gives a digest for whole files");
check(await storedDigest(closed.subarray(0, 50)) === null, "a file cut inside its header: none");
check(await storedDigest(closed.subarray(0, 8)) === null, "a file of 8 bytes: none");
const badMagic = closed.slice();
badMagic[0] = 0x58;
check(await storedDigest(badMagic) === null, "a file without the magic BWVSEG: none");
const bigContext = new Uint8Array(116 + 4097); // a header of n = 4097, nothing after it
bigContext.set(closed.subarray(0, 8));
bigContext.set([0, 0, 0x10, 0x01], 8);
check(await storedDigest(bigContext) === null, "a context length above 4096: none");
check(await storedDigestOf(ref.header_sha256, ref.cipher_sha256) === ref.files.closed.stored_digest,
  "storedDigestOf(the manifest's hashes) = the file's stored digest");
check(await storedDigestOf(ref.header_sha256, []) === ref.files["no chunks"].stored_digest,
  "storedDigestOf(header only) = the stored digest of a file with no chunk");
check(await storedDigestOf(ref.header_sha256, ["AB".repeat(32)]) === null,
  "storedDigestOf: upper-case hex is no hash");
check(await storedDigest(closed) !== await sha256hex(closed), "the stored digest is not the file's SHA-256");
check(await plainDigest(ref.blobs.map(unhex)) === ref.plain_digest, "plainDigest(blobs)");
check(await plainDigestOf(ref.plain_sha256) === ref.plain_digest, "plainDigestOf(hashes)");
check(await plainDigest([]) === ref.empty_plain_digest, "plainDigest of no blob");

// A manifest as a v4 device with a key in a file signs it: 2 blobs, 3 chunks (init, fragment, final).
const finalPlain = await sha256hex(new Uint8Array(0));
const kinds = ["init", "fragment", "final"];
const chunks = ref.cipher_sha256.map((c, i) => ({ chunk: i, kind: kinds[i], first_us: i,
  end_us: i + 1, plain_sha256: i < 2 ? ref.plain_sha256[i] : finalPlain,
  plain_size: i < 2 ? ref.blobs[i].length / 2 : 0, cipher_sha256: c, cipher_size: 0,
  trail_seq: i }));
const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
const pub = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
const kid = await keyId(pub);
const manifest = { type: "manifest", v: 4, suite: "ed25519", counter: null, device_id: "cam-1",
  key_id: kid, seq: 4,
  prev_sha256: "0".repeat(64), firmware_version: "t", recording_id: "rec1", segment_index: 0,
  start_us: 0, end_us: 3, wall_start_us: 0, wall_end_us: 3, wall_quality: "unsynced",
  trigger: "manual", file: "rec1_0000.bwvseg", agency_key_id: "0".repeat(16),
  header_sha256: ref.header_sha256, stored_digest: ref.files.closed.stored_digest,
  stored_size: closed.length, plain_digest: ref.plain_digest, plain_size: 103, chunks,
  truncated: false, recovered: false, unsigned_tail: null, clock_sync_seq: null };
check(await manifestDigestError(manifest) === null, "manifestDigestError: right digests pass");

async function read(r) {
  const msg = concat(domain(r.type), canonicalBytes(r));
  const sig = hex(new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey,
    msg)));
  return readSignedLine(te.encode(`{"record":${new TextDecoder().decode(canonicalBytes(r))},`
    + `"sig":"${sig}"}`), pub, kid);
}
check((await read(manifest)).error === null, "a signed v4 manifest reads");
check(hex(domain("manifest")) === hex(te.encode("bwv:manifest:v4\0")), "the v4 domain string");
const cases = [
  ["v 2", { v: 2 }, /^format version 2: this reader knows version 4 only$/],
  ["v 3", { v: 3 }, /^format version 3: this reader knows version 4 only$/],
  ["no suite", { suite: undefined }, /fields missing or extra/],
  ["no counter", { counter: undefined }, /fields missing or extra/],
  ["a counter with an ed25519 suite", { counter: 3 }, /^counter 3/],
  ["stored_digest the file's SHA-256", { stored_digest: await sha256hex(closed) }, /^stored_digest/],
  ["plain_digest null", { plain_digest: null }, /^plain_digest/],
  ["plain_digest over the final chunk too",
    { plain_digest: await plainDigestOf(chunks.map((c) => c.plain_sha256)) }, /^plain_digest/],
  ["plain_size not the chunks' sum", { plain_size: 104 }, /^plain_size/],
  ["truncated with a final chunk", { truncated: true }, /^truncated/],
  ["a final chunk not last", { chunks: [chunks[0], { ...chunks[2], chunk: 1 },
    { ...chunks[1], chunk: 2 }] }, /^chunks\[1\] is a final chunk/],
  ["the old field plain_sha256", { plain_sha256: ref.plain_digest }, /fields missing or extra/],
];
for (const [what, change, want] of cases) {
  const r = { ...manifest, ...change };
  if ("plain_sha256" in change) delete r.plain_digest;
  for (const [k, x] of Object.entries(change)) if (x === undefined) delete r[k];
  const { error } = await read(r);
  check(want.test(error ?? ""), `refused: ${what} (${error})`);
}
console.log(failed ? `${failed} failed` : "all agree");
process.exit(failed ? 1 : 0);
