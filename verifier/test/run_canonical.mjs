// tests/vectors/canonical.json against verifier/src/canonical.js and records.js.
// Usage: node verifier/test/run_canonical.mjs
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { canonical, parseCanonical, te, unhex, hex, canonicalBytes, concat } from "../src/canonical.js";
import { domain, readSignedLine } from "../src/records.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const v = JSON.parse(readFileSync(join(ROOT, "tests", "vectors", "canonical.json"), "utf8"));
let failed = 0;
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failed++;
};
for (const c of v.canonical) {
  check(canonical(JSON.parse(c.input)) === c.canonical, `encode ${c.input}`);
  let back = null;
  try { back = canonical(parseCanonical(te.encode(c.canonical))); } catch { /* refused */ }
  check(back === c.canonical, `read ${c.canonical}`);
}
for (const bad of v.invalid) {
  let refused = false;
  try { parseCanonical(te.encode(bad)); } catch { refused = true; }
  check(refused, `refuse ${bad}`);
}
// every signed record the vectors give (one per suite, when there are more than one)
for (const [name, s] of Object.entries(v).filter(([k]) => k.startsWith("signed_record"))) {
  if (s.signed_message_hex) {
    const msg = concat(domain(s.record.type), canonicalBytes(s.record));
    check(hex(msg) === s.signed_message_hex, `${name}: signed message bytes`);
  }
  const line = s.line ?? (s.signature_hex
    ? canonical({ record: s.record, sig: s.signature_hex }) : null);
  check(line !== null, `${name}: a line to read`);
  if (line) {
    const { error } = await readSignedLine(te.encode(line.replace(/\n$/, "")),
      unhex(s.public_key_hex), s.key_id);
    check(error === null, `${name}: signed record verifies (${error})`);
  }
}
console.log(failed ? `${failed} failed` : "all agree");
process.exit(failed ? 1 : 0);
