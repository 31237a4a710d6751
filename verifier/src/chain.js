// The chain (manifests/) and the trail (trail.jsonl): signatures, seq, links, duplicates,
// equivocation, gaps (docs/evidence-format.md, "Checks" 1-2).

import { equalBytes, sha256hex } from "./canonical.js";
import { readSignedLine } from "./records.js";

const NL = 0x0a;

function base(name) {
  return name.slice(name.lastIndexOf("/") + 1);
}

function splitLine(bytes) {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== NL) return null;
  const line = bytes.subarray(0, bytes.length - 1);
  return line.includes(NL) ? null : line;
}

/** Keep the first of each seq (in name order); the others are duplicates or equivocation. */
function dedupe(entries, find, what) {
  const bySeq = new Map();
  for (const e of entries) {
    const first = bySeq.get(e.record.seq);
    if (!first) {
      bySeq.set(e.record.seq, e);
    } else if (equalBytes(first.bytes, e.bytes)) {
      find("duplicate", `${what} ${e.record.seq} given twice`, { file: e.file, seq: e.record.seq });
    } else {
      find("equivocation", `two different signed ${what}s with seq ${e.record.seq}`,
        { file: e.file, seq: e.record.seq });
    }
  }
  return [...bySeq.values()].sort((a, b) => a.record.seq - b.record.seq);
}

/** Gaps and links over records sorted by seq, from the smallest given. */
function walk(list, find, gapKind, what, file) {
  const missing = new Set();
  for (let i = 1; i < list.length; i++) {
    const a = list[i - 1];
    const b = list[i];
    if (b.record.seq !== a.record.seq + 1) {
      const lo = a.record.seq + 1;
      const hi = b.record.seq - 1;
      for (let s = lo; s <= hi; s++) missing.add(s);
      find(gapKind, `${what}s ${lo}..${hi} are missing`, { file: file ?? null, seq: lo });
    } else if (b.record.prev_sha256 !== a.hash) {
      find("chain_break", `${what} ${b.record.seq} does not name its predecessor's hash`,
        { file: b.file, seq: b.record.seq });
    }
  }
  return missing;
}

/** The chain records of manifests/: [{file, bytes, hash, record}] kept, sorted by seq. */
export async function readChain(files, pub, kid, find) {
  const names = [...files.keys()].filter((n) => n.startsWith("manifests/")).sort();
  const good = [];
  for (const file of names) {
    const bytes = files.get(file);
    const line = splitLine(bytes);
    if (!line) {
      find("altered", "not one signed line", { file });
      continue;
    }
    const { record, error } = await readSignedLine(line, pub, kid);
    if (error) {
      find("altered", `chain record: ${error}`, { file });
      continue;
    }
    const want = `${String(record.seq).padStart(12, "0")}.${record.type}.json`;
    if (base(file) !== want) find("misnamed", `should be named ${want}`, { file, seq: record.seq });
    good.push({ file, bytes, hash: await sha256hex(bytes), record });
  }
  const kept = dedupe(good, find, "chain record");
  const gaps = walk(kept, find, "gap", "chain record", null);
  return { records: kept, gaps };
}

/** trail.jsonl: {bySeq: Map seq -> record, missing: Set of seqs} or null when not given. */
export async function readTrail(files, pub, kid, find) {
  const bytes = files.get("trail.jsonl");
  if (!bytes) return null;
  const file = "trail.jsonl";
  const good = [];
  let start = 0;
  let lineNo = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(NL, start);
    lineNo++;
    if (end < 0) {
      find("torn", `line ${lineNo} is cut short (no final newline)`, { file });
      break;
    }
    const line = bytes.subarray(start, end);
    const whole = bytes.subarray(start, end + 1);
    start = end + 1;
    if (line.length === 0) continue;
    const { record, error } = await readSignedLine(line, pub, kid);
    if (error || record.type !== "trail") {
      find("altered", `trail line ${lineNo}: ${error || "not a trail record"}`, { file });
      continue;
    }
    good.push({ file, bytes: whole, hash: await sha256hex(whole), record });
  }
  const kept = dedupe(good, find, "trail line");
  const missing = walk(kept, find, "trail_missing", "trail line", file);
  return { bySeq: new Map(kept.map((e) => [e.record.seq, e.record])), missing,
    first: kept.length ? kept[0].record.seq : null };
}
