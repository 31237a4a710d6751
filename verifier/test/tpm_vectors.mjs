// The TPM-suite vectors (tests/vectors/tpm/, EXPECTED.md there: a recording signed by a P-256
// key with a hardware counter, and its end record changed) as exhibit bundles: the outbox's
// chain/ is an exhibit's manifests/, its segments/ and trail.jsonl as they are. Each vector is
// checked against the hand-written verdicts in expected_verdicts.json, as
// tests/test_crypto_suites_vectors.py checks `bwv verify` (except "decrypted": this verifier
// holds no agency secret, it checks the stored segments' digests). With `dock`, the bundle
// also holds device.pub and an enrollment.json the vectors' dock signs (its seed is in
// tests/vectors/exhibit/source/keys.json), and only the dock's key is trusted.
import { createPrivateKey, sign as nodeSign } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { canonicalBytes, sha256hex, b64encode, unhex, te, hex } from "../src/canonical.js";
import { verifyBundle, readKey } from "../src/verify.js";

function walk(dir, base = dir, out = new Map()) {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, base, out);
    else out.set(relative(base, p).split("\\").join("/"), new Uint8Array(readFileSync(p)));
  }
  return out;
}

/** An outbox's name as an exhibit's. */
const exhibitName = (name) => name.replace(/^chain\//, "manifests/");

/** The enrollment entry a dock (Ed25519 seed) signs for `pub`, as the custody log has it. */
async function enrollment(dockSeed, pub, deviceId) {
  const der = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), dockSeed]);
  const key = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  const body = { action: "enrolled", actor: "technician", at_us: 1700000000000000,
    detail: { key_id: (await sha256hex(pub)).slice(0, 16) }, device_id: deviceId, index: 1,
    prev_hash: "0".repeat(64), segment_id: null, sha256: await sha256hex(pub) };
  const entryHash = await sha256hex(canonicalBytes(body));
  const signature = b64encode(new Uint8Array(nodeSign(null, unhex(entryHash), key)));
  return te.encode(JSON.stringify({ ...body, entry_hash: entryHash, signature }));
}

/** What the hand-written verdicts say, from a report (the Python test's `_verdicts`). */
function verdicts(rep) {
  const rec = rep.recordings[0] ?? {};
  return {
    ok: rep.ok,
    suite: rep.suite,
    finding_kinds: rep.findings.map((f) => f.kind).sort(),
    counter_findings: rep.findings.filter((f) => f.kind.startsWith("counter_")).map((f) => ({
      kind: f.kind, seq: f.seq, counter: f.counter, prev_seq: f.prev_seq,
      prev_counter: f.prev_counter })),
    recording: { status: rec.status, end_reason: rec.end_reason, segments: rec.segments },
    segments: rep.segments.map((s) => ({ index: s.segment_index, status: s.status,
      chunks: s.chunks.map((c) => [c.kind, c.status]) })),
    recordings: rep.recordings.length,
  };
}

/** Runs every TPM vector; returns the number that failed (and logs each). */
export async function runTpmVectors(root, { dock = false, verbose = false } = {}) {
  const dir = join(root, "tests", "vectors", "tpm");
  const expected = JSON.parse(readFileSync(join(dir, "expected_verdicts.json"), "utf8"));
  const keys = JSON.parse(readFileSync(join(dir, "keys.json"), "utf8"));
  const pubText = readFileSync(join(dir, expected.device_pub), "utf8");
  const pub = readKey(pubText);
  const agencyPub = unhex(keys.agency_public_hex);
  const outbox = walk(join(dir, "outbox"));
  const anchors = { agencyPub };
  const extra = new Map([["EXHIBIT.md", te.encode("# A TPM-suite vector as an exhibit\n")]]);
  if (dock) {
    const ex = join(root, "tests", "vectors", "exhibit");
    const seed = Buffer.from(JSON.parse(readFileSync(join(ex, "source", "keys.json"), "utf8")).dock,
      "hex");
    anchors.dockPub = readKey(readFileSync(join(ex, "dock.pub"), "utf8"));
    extra.set("device.pub", te.encode(`${hex(pub)}\n`));
    extra.set("enrollment.json", await enrollment(seed, pub, keys.device_id));
  } else anchors.devicePub = pub;
  let failed = 0;
  for (const v of expected.vectors) {
    const files = new Map(extra);
    const changed = new Map(v.change.map((c) => [c.replace, c.with]));
    for (const [name, data] of outbox) {
      const other = changed.get(name);
      files.set(exhibitName(name), other ? new Uint8Array(readFileSync(join(dir, other))) : data);
    }
    const rep = await verifyBundle(files, anchors);
    const got = rep.error ? { error: rep.error } : verdicts(rep);
    const want = { ok: v.ok, suite: v.suite, finding_kinds: v.finding_kinds,
      counter_findings: v.counter_findings, recording: v.recording,
      segments: v.segments.map(({ index, status, chunks }) => ({ index, status, chunks })),
      recordings: 1 };
    const errs = Object.keys(want).filter((k) => JSON.stringify(got[k]) !== JSON.stringify(want[k]));
    if (dock && !rep.error && !/^dock key [0-9a-f]{16} \(enrollment\)$/.test(rep.trusted)) {
      errs.push("trusted");
    }
    if (errs.length) {
      failed++;
      console.log(`FAIL tpm: ${v.name}: ${errs.map((k) => `${k} ${JSON.stringify(got[k])}`).join("; ")}`
        + (rep.error ? ` (${rep.error})` : ""));
      if (verbose) console.log(JSON.stringify(rep.findings, null, 1));
    } else console.log(`ok   tpm: ${v.name}`);
  }
  return failed;
}
