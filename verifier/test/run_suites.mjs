// Version 4's suites and counter rule, on data made here with node's own crypto (a P-256 key
// as a TPM holds one, an Ed25519 key as a file holds one): the suite follows the key, a high-S
// ECDSA signature and a record whose suite is not its key's are refused, the chain's counter
// must go up by one, and an exhibit re-signed with a P-256 key verifies end to end.
// Usage: node verifier/test/run_suites.mjs
import { generateKeyPairSync, sign as nodeSign, createHash } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { canonical, canonicalBytes, concat, te, hex, unhex } from "../src/canonical.js";
import { domain, readSignedLine } from "../src/records.js";
import { readChain } from "../src/chain.js";
import { ECDSA_P256, ED25519, isLowS, suiteOf, verifySignature } from "../src/suites.js";
import { verifyBundle, readKey } from "../src/verify.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const VEC = join(ROOT, "tests", "vectors", "exhibit");
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
};
const b64url = (s) => new Uint8Array(Buffer.from(s, "base64url"));
const sha = (b) => createHash("sha256").update(b).digest("hex");

function bytes32(n) {
  return unhex(n.toString(16).padStart(64, "0"));
}

/** r‖s with s replaced by n - s: the other valid signature, the one a verifier refuses. */
function flipS(sig) {
  const s = BigInt(`0x${hex(sig.subarray(32))}`);
  return concat(sig.subarray(0, 32), bytes32(N - s));
}

function p256Signer() {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const jwk = publicKey.export({ format: "jwk" });
  const pub = concat(new Uint8Array([4]), b64url(jwk.x), b64url(jwk.y));
  const sign = (msg) => {
    const sig = new Uint8Array(nodeSign("sha256", msg, { key: privateKey, dsaEncoding: "ieee-p1363" }));
    return isLowS(sig) ? sig : flipS(sig); // the device normalises to low-S
  };
  return { pub, suite: ECDSA_P256, kid: sha(pub).slice(0, 16), sign };
}

function ed25519Signer() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const pub = b64url(publicKey.export({ format: "jwk" }).x);
  const sign = (msg) => new Uint8Array(nodeSign(null, msg, privateKey));
  return { pub, suite: ED25519, kid: sha(pub).slice(0, 16), sign };
}

/** A signed line (without its newline) of `record`, as the device writes it. */
function signedLine(signer, record, sigOf = (s) => s) {
  const sig = sigOf(signer.sign(concat(domain(record.type), canonicalBytes(record))));
  return te.encode(canonical({ record, sig: hex(sig) }));
}

const p256 = p256Signer();
const ed = ed25519Signer();

// -- keys and signatures --------------------------------------------------------------------
check(suiteOf(p256.pub) === ECDSA_P256 && suiteOf(ed.pub) === ED25519, "suite of a key");
check(suiteOf(new Uint8Array(65)) === null && suiteOf(new Uint8Array(33)) === null,
  "a key of neither form has no suite");
check(readKey(hex(p256.pub)).length === 65 && readKey(`${hex(ed.pub)}\n`).length === 32,
  "key files: 130 and 64 hex digits");
check(readKey(hex(p256.pub).slice(2)) === null, "a P-256 key without its 04 is refused");
{
  const msg = te.encode("bwv:end:v4\0{}");
  const sig = p256.sign(msg);
  check(await verifySignature(p256.pub, msg, sig), "a low-S P-256 signature verifies");
  check(!(await verifySignature(p256.pub, msg, flipS(sig))), "its high-S twin does not");
  check(!(await verifySignature(p256.pub, te.encode("other"), sig)), "not over another message");
  check(!(await verifySignature(p256Signer().pub, msg, sig)), "not by another P-256 key");
  const bad = p256.pub.slice();
  bad[64] ^= 1; // off the curve
  check(!(await verifySignature(bad, msg, sig)), "not by a point off the curve");
  check(await verifySignature(ed.pub, msg, ed.sign(msg)), "Ed25519 still verifies");
}

// -- records ------------------------------------------------------------------------------------
function clockStep(signer, seq, counter, prev = null, extra = {}) {
  return { type: "clock_step", v: 4, suite: signer.suite, device_id: "vec-tpm", key_id: signer.kid,
    seq, prev_sha256: prev, counter, capture_us: 1000 + seq, from_wall_us: 5, to_wall_us: 6,
    time_sync_seq: 0, ...extra };
}

async function read(signer, record, sigOf) {
  return readSignedLine(signedLine(signer, record, sigOf), signer.pub, signer.kid);
}

check((await read(p256, clockStep(p256, 0, 7))).error === null, "a P-256 chain record reads");
check((await read(ed, clockStep(ed, 0, null))).error === null, "an Ed25519 chain record reads");
check((await read(p256, clockStep(p256, 0, 7), flipS)).reason === "bad_signature",
  "a high-S record is bad_signature");
check((await read(p256, clockStep(p256, 0, 7, null, { suite: ED25519 }))).reason === "schema",
  "an Ed25519 record with a counter is refused by its schema");
check((await read(p256, clockStep(p256, 0, null, null, { suite: ED25519 }))).reason === "foreign",
  "a record saying ed25519 signed by a P-256 key is foreign");
check((await read(ed, clockStep(ed, 0, 3, null, { suite: ECDSA_P256 }))).reason === "foreign",
  "a record saying ecdsa signed by an Ed25519 key is foreign");
check((await read(p256, clockStep(p256, 0, null))).reason === "schema",
  "a P-256 chain record without a counter is refused by its schema");
check((await read(p256, clockStep(p256, 0, -1))).reason === "schema", "a negative counter too");
check((await read(p256, clockStep(p256, 0, 7, null, { v: 3 }))).reason === "schema",
  "a version 3 record is refused");
{
  const r = clockStep(p256, 0, 7);
  delete r.counter;
  check((await read(p256, r)).reason === "schema", "a chain record without counter is refused");
  const t = { ...clockStep(p256, 0, 7), suite: "rsa" };
  check((await read(p256, t)).reason === "schema", "an unknown suite is refused");
}

// -- the counter rule, along a chain ------------------------------------------------------------
async function chainOf(signer, counters, sigOf = () => (s) => s) {
  const files = new Map();
  let prev = null;
  counters.forEach((c, seq) => {
    const line = concat(signedLine(signer, clockStep(signer, seq, c, prev), sigOf(seq)), te.encode("\n"));
    files.set(`manifests/${String(seq).padStart(12, "0")}.clock_step.json`, line);
    prev = sha(line);
  });
  const found = [];
  const find = (kind, detail, where = {}) => found.push({ ...where, kind, detail,
    seq: where.seq ?? null });
  await readChain(files, signer.pub, signer.kid, find);
  return found;
}

const kinds = (found) => found.map((f) => `${f.kind}@${f.seq}`).join(" ");
check(kinds(await chainOf(p256, [41, 42, 43, 44])) === "", "counters 41..44: nothing to say");
check(kinds(await chainOf(ed, [null, null, null])) === "", "an Ed25519 chain has no counters");
{
  const f = await chainOf(p256, [41, 42, 45, 46]);
  check(kinds(f) === "counter_gap@2", `a jump of 3 is a counter_gap (${kinds(f)})`);
  check(/counter 45.*had 42: 2 records/.test(f[0]?.detail), "that names the counters and k");
  check(f[0]?.counter === 45 && f[0]?.prev_seq === 1 && f[0]?.prev_counter === 42,
    "and gives them as counter, prev_seq, prev_counter");
}
check(kinds(await chainOf(p256, [41, 42, 42, 43])) === "counter_reused@2",
  "a counter given twice is counter_reused");
check(kinds(await chainOf(p256, [41, 42, 40, 41])) === "counter_reused@2",
  "a counter going back is counter_reused");
check(kinds(await chainOf(p256, [0, 1, 2])) === "", "counting from 0");
{
  const f = await chainOf(p256, [41, 42, 43], (seq) => (seq === 1 ? flipS : (s) => s));
  check(kinds(f) === "altered@null gap@1 counter_gap@2",
    `a high-S record is altered, so missing from the chain, which skips a count (${kinds(f)})`);
}

// -- an exhibit re-signed with a P-256 key --------------------------------------------------
function walk(dir, base = dir, out = new Map()) {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, base, out);
    else out.set(relative(base, p).split("\\").join("/"), new Uint8Array(readFileSync(p)));
  }
  return out;
}

/** The bundle's chain and trail signed again by `signer` as version 4; counterOf(i) is the
 * counter of the i-th chain record. */
function resign(files, signer, counterOf) {
  const out = new Map(files);
  const rewrite = (line, prev, counter) => {
    const { record } = JSON.parse(new TextDecoder().decode(line));
    const r = { ...record, v: 4, suite: signer.suite, key_id: signer.kid, prev_sha256: prev };
    if (record.type !== "trail") r.counter = counter;
    return concat(signedLine(signer, r), te.encode("\n"));
  };
  let prev = null;
  const chain = [...files.keys()].filter((n) => n.startsWith("manifests/")).sort();
  chain.forEach((name, i) => {
    const line = rewrite(files.get(name).subarray(0, -1), prev, counterOf(i));
    out.set(name, line);
    prev = sha(line);
  });
  const text = files.get("trail.jsonl");
  const lines = [];
  prev = null;
  for (const l of new TextDecoder().decode(text).split("\n").filter(Boolean)) {
    const line = rewrite(te.encode(l), prev, null);
    lines.push(line);
    prev = sha(line);
  }
  out.set("trail.jsonl", concat(...lines));
  return out;
}

{
  const pristine = walk(join(VEC, "pristine"));
  const agencyPub = readKey(readFileSync(join(VEC, "agency.pub"), "utf8"));
  const good = resign(pristine, p256, (i) => 100 + i);
  let rep = await verifyBundle(good, { devicePub: p256.pub, agencyPub });
  check(rep.ok && rep.suite === ECDSA_P256 && rep.recordings[0]?.status === "complete",
    `a P-256 exhibit verifies (${JSON.stringify(rep.findings.map((f) => f.kind))})`);
  rep = await verifyBundle(resign(pristine, ed, () => null), { devicePub: ed.pub, agencyPub });
  check(rep.ok && rep.suite === ED25519, "the same exhibit as Ed25519 v4 verifies");
  rep = await verifyBundle(good, { devicePub: ed.pub, agencyPub });
  check(!rep.ok && rep.findings.some((f) => f.kind === "substituted"),
    "the P-256 exhibit checked with another key: substituted");
  rep = await verifyBundle(resign(pristine, p256, (i) => (i < 2 ? 100 + i : 105 + i)),
    { devicePub: p256.pub, agencyPub });
  check(!rep.ok && kinds(rep.findings) === "counter_gap@2"
    && rep.recordings[0]?.status === "complete",
    `a counter gap: found wanting, the footage itself intact (${kinds(rep.findings)})`);
  rep = await verifyBundle(good, { devicePub: new Uint8Array(33), agencyPub });
  check(rep.error && rep.wanting === false, "a device key of neither form cannot be checked");
  const offCurve = p256.pub.slice();
  offCurve[64] ^= 1;
  rep = await verifyBundle(good, { devicePub: offCurve, agencyPub });
  check(rep.error && rep.wanting === false, "nor a P-256 key off the curve");
}
console.log(failed ? `${failed} failed` : "all agree");
process.exit(failed ? 1 : 0);
