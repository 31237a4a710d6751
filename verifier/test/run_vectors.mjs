// Runs verifier/src/verify.js on every bundle of tests/vectors/exhibit/ and compares with
// expected_verdicts.json (and, with --bwv-json DIR, with `bwv verify --json` reports saved
// there as <bundle>.json); then the TPM-suite vectors of tests/vectors/tpm/ (tpm_vectors.mjs).
// Usage: node verifier/test/run_vectors.mjs [--dock] [--bwv-json DIR]
import { readFileSync, readdirSync, statSync, existsSync } from "node:fs";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { verifyBundle, readKey } from "../src/verify.js";
import { runTpmVectors } from "./tpm_vectors.mjs";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const VEC = join(ROOT, "tests", "vectors", "exhibit");
const args = process.argv.slice(2);
const viaDock = args.includes("--dock");
const bwvDir = args.includes("--bwv-json") ? args[args.indexOf("--bwv-json") + 1] : null;

function walk(dir, base = dir, out = new Map()) {
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) walk(p, base, out);
    else out.set(relative(base, p).split("\\").join("/"), new Uint8Array(readFileSync(p)));
  }
  return out;
}

const expected = JSON.parse(readFileSync(join(VEC, "expected_verdicts.json"), "utf8"));
const key = (f) => readKey(readFileSync(join(VEC, f), "utf8"));
const vkeys = readFileSync(join(VEC, expected.witness.witness_key), "utf8").split("\n")
  .map((l) => l.replace(/#.*/, "").trim()).filter(Boolean);
const checkpoint = new Uint8Array(readFileSync(join(VEC, expected.witness.checkpoint)));

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

let failed = 0;
for (const [name, want] of Object.entries(expected.vectors)) {
  const files = walk(join(VEC, name));
  const anchors = { agencyPub: key(expected.agency_pub) };
  if (viaDock) anchors.dockPub = key(expected.witness.dock_pub);
  else anchors.devicePub = key(expected.device_pub);
  if (want.log) {
    anchors.witnessVkeys = vkeys;
    anchors.checkpoint = checkpoint;
    anchors.dockPub = key(expected.witness.dock_pub);
  }
  const rep = await verifyBundle(files, anchors);
  const errs = [];
  const kinds = [...new Set(rep.findings.map((f) => f.kind))].sort();
  if (rep.ok !== (want.exit === 0)) errs.push(`ok ${rep.ok}`);
  if (!same(kinds, want.finding_kinds)) errs.push(`kinds ${JSON.stringify(kinds)}`);
  const recs = rep.recordings.map((r) => r.status);
  if (!same(recs, [want.recording])) errs.push(`recordings ${JSON.stringify(recs)}`);
  const segs = Object.fromEntries(rep.segments.map((s) => [String(s.segment_index), s.status]));
  if (!same(segs, want.segments)) errs.push(`segments ${JSON.stringify(segs)}`);
  for (const [idx, chunks] of Object.entries(want.chunks || {})) {
    const seg = rep.segments.find((s) => String(s.segment_index) === idx);
    const got = seg ? seg.chunks.map((c) => [c.kind, c.status]) : null;
    if (!same(got, chunks)) errs.push(`chunks of ${idx}: ${JSON.stringify(got)}`);
  }
  if (want.log) {
    if (rep.findings.length !== want.finding_kinds.length) errs.push("finding count");
    if (want.finding_seqs && !same(rep.findings.map((f) => f.seq), want.finding_seqs)) {
      errs.push(`finding seqs ${JSON.stringify(rep.findings.map((f) => f.seq))}`);
    }
    if (want.finding_files && !same(rep.findings.map((f) => f.file), want.finding_files)) {
      errs.push(`finding files ${JSON.stringify(rep.findings.map((f) => f.file))}`);
    }
    if (want.included && !same(rep.log?.included, want.included)) {
      errs.push(`included ${JSON.stringify(rep.log?.included)}`);
    }
    if ("recorded_before_us" in want
      && rep.recordings[0]?.recorded_before_us !== want.recorded_before_us) errs.push("T1");
  }
  if (bwvDir && existsSync(join(bwvDir, `${name}.json`))) {
    const b = JSON.parse(readFileSync(join(bwvDir, `${name}.json`), "utf8"));
    const shape = (r) => ({ ok: r.ok, kinds: r.findings.map((f) => f.kind).sort(),
      recs: r.recordings.map((x) => x.status),
      segs: r.segments.map((s) => [s.recording_id, s.segment_index, s.status,
        s.chunks.map((c) => [c.chunk, c.kind, c.status])]) });
    const [mine, theirs] = [shape(rep), shape(b)];
    for (const k of Object.keys(mine)) {
      if (!same(mine[k], theirs[k])) errs.push(`bwv ${k}: ${JSON.stringify(theirs[k])} vs ${JSON.stringify(mine[k])}`);
    }
  }
  if (errs.length) {
    failed++;
    console.log(`FAIL ${name}: ${errs.join("; ")}`);
    if (args.includes("-v")) console.log(JSON.stringify(rep.findings, null, 1));
  } else console.log(`ok   ${name}`);
}
// The trust anchor: never the bundle alone; a wrong dock key is NOT VERIFIED, no key at all
// cannot be checked, another device key makes every record fail.
{
  const files = walk(join(VEC, "pristine"));
  const other = key(expected.agency_pub); // any 32 bytes that are not the keys in question
  const cases = [
    ["no key", {}, (r) => r.error && r.wanting === false],
    ["another dock key", { dockPub: other }, (r) => r.error && r.wanting === true],
    ["another device key", { devicePub: other },
      (r) => !r.ok && r.findings.some((f) => f.kind === "substituted")],
    ["dock key", { dockPub: key(expected.witness.dock_pub) },
      (r) => r.ok && /^dock key [0-9a-f]{16} \(enrollment\)$/.test(r.trusted)],
    ["device key", { devicePub: key(expected.device_pub) },
      (r) => r.ok && /^device key [0-9a-f]{16}$/.test(r.trusted)],
  ];
  for (const [what, anchors, good] of cases) {
    const r = await verifyBundle(files, anchors);
    if (good(r)) console.log(`ok   anchor: ${what}`);
    else {
      failed++;
      console.log(`FAIL anchor: ${what}: ${JSON.stringify({ ok: r.ok, error: r.error })}`);
    }
  }
}
failed += await runTpmVectors(ROOT, { dock: viaDock, verbose: args.includes("-v") });
console.log(failed ? `${failed} failed` : "all agree");
process.exit(failed ? 1 : 0);
