// The chain (manifests/) and the trail (trail.jsonl): signatures, seq, links, duplicates,
// equivocation, gaps, the TPM counter (docs/evidence-format.md, "Checks" 1-2, "Version 4").

import { equalBytes, parseJson, sha256hex } from "./canonical.js";
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

/** Gaps (from `first`) and links over records sorted by seq. */
function walk(list, first, find, gapKind, what, file) {
  const missing = new Set();
  let before = first - 1;
  for (const e of list) {
    const s = e.record.seq;
    if (s > before + 1) {
      const lo = before + 1;
      const hi = s - 1;
      for (let x = lo; x <= hi; x++) missing.add(x);
      find(gapKind, lo === hi ? `${what} ${lo} is missing` : `${what}s ${lo}..${hi} are missing`,
        { file: file ?? null, seq: lo });
    }
    before = Math.max(before, s);
  }
  const bySeq = new Map(list.map((e) => [e.record.seq, e]));
  for (const e of list) {
    const s = e.record.seq;
    if (s === 0 && e.record.prev_sha256 !== null) {
      find("chain_break", `${what} 0 names a predecessor`, { file: file ?? e.file, seq: 0 });
    }
    const prev = bySeq.get(s - 1);
    if (prev && e.record.prev_sha256 !== prev.hash) {
      find("chain_break", `${what} ${s} does not name ${what} ${s - 1} as its predecessor`,
        { file: file ?? e.file, seq: s });
    }
  }
  return missing;
}

const CHAIN_NAME = /^([0-9]{12})\.(manifest|end|time_sync|clock_step)\.json$/;

/** The seq a chain record file's name gives, or null. */
export function seqOfName(name) {
  const m = CHAIN_NAME.exec(base(name));
  return m ? Number(m[1]) : null;
}

/** What a refused record makes it: signed by another key (or suite) is `substituted`. */
function reasonKind(reason) {
  return reason === "foreign" ? "substituted" : "altered";
}

/**
 * The counter rule: along the chain in seq order each record's counter (a TPM's NV counter,
 * counted once per chain record) is the previous chain record's + 1. More is `counter_gap`
 * (records the TPM counted are not in the chain: rolled back, removed, or power lost between
 * counting and writing), no more is `counter_reused`. Ed25519 records (counter null) have none.
 */
function checkCounters(kept, find) {
  let prev = null;
  for (const e of kept) {
    const r = e.record;
    if (r.counter === null || r.counter === undefined) continue;
    if (prev) {
      const [p, c] = [prev.record.counter, r.counter];
      const at = { file: e.file, seq: r.seq, counter: c, prev_seq: prev.record.seq,
        prev_counter: p };
      const where = `chain record ${r.seq} has counter ${c}, chain record ${prev.record.seq} `;
      if (c > p + 1) {
        const k = c - p - 1;
        find("counter_gap", `${where}had ${p}: ${k === 1 ? "1 record" : `${k} records`} the `
          + `TPM counted ${k === 1 ? "is" : "are"} not in the chain (removed, the device's `
          + "storage rolled back, or power lost between counting and writing)", at);
      } else if (c <= p) {
        find("counter_reused", `${where}had ${p}: a counter value the TPM gave before`, at);
      }
    }
    prev = e;
  }
}

/** The chain records of manifests/: [{file, bytes, hash, record}] kept, sorted by seq. */
export async function readChain(files, pub, kid, find) {
  const names = [...files.keys()].filter((n) => /^manifests\/.+\.json$/.test(n)).sort();
  const good = [];
  for (const file of names) {
    const bytes = files.get(file);
    const line = splitLine(bytes);
    if (!line) {
      find("altered", "not one signed line", { file });
      continue;
    }
    const { record, error, reason } = await readSignedLine(line, pub, kid);
    if (error) {
      find(reasonKind(reason), `chain record: ${error}`, { file });
      continue;
    }
    const want = `${String(record.seq).padStart(12, "0")}.${record.type}.json`;
    if (base(file) !== want) find("misnamed", `should be named ${want}`, { file, seq: record.seq });
    good.push({ file, bytes, hash: await sha256hex(bytes), record });
  }
  const kept = dedupe(good, find, "chain record");
  const named = names.map(seqOfName).filter((s) => s !== null);
  const first = named.length ? Math.min(...named) : 0;
  const gaps = walk(kept, first, find, "gap", "chain record", null);
  checkCounters(kept, find);
  return { records: kept, gaps, names };
}

/** The seq of the first line that reads as JSON with a record seq (bwv: where the trail starts). */
function firstSeq(lines) {
  for (const l of lines) {
    const o = parseJson(l);
    if (o && o.record && Number.isSafeInteger(o.record.seq)) return o.record.seq;
  }
  return 0;
}

/** trail.jsonl: {bySeq: Map seq -> record, missing: Set of seqs, first} or null when not given. */
export async function readTrail(files, pub, kid, find) {
  const bytes = files.get("trail.jsonl");
  if (!bytes) return null;
  const file = "trail.jsonl";
  const lines = [];
  for (let start = 0; start < bytes.length;) {
    const end = bytes.indexOf(NL, start);
    if (end < 0) {
      lines.push({ line: bytes.subarray(start), torn: true });
      break;
    }
    lines.push({ line: bytes.subarray(start, end), whole: bytes.subarray(start, end + 1) });
    start = end + 1;
  }
  const first = firstSeq(lines.map((l) => l.line));
  const good = [];
  const bad = [];
  for (let i = 0; i < lines.length; i++) {
    const { line, whole, torn } = lines[i];
    if (torn) {
      bad.push({ no: i + 1, kind: "torn", why: "cut short (no final newline)" });
      continue;
    }
    const { record, error, reason } = await readSignedLine(line, pub, kid);
    if (error || record.type !== "trail") {
      bad.push({ no: i + 1, kind: error ? reasonKind(reason) : "altered",
        why: error || "not a trail record" });
      continue;
    }
    good.push({ file, bytes: whole, hash: await sha256hex(whole), record, no: i + 1 });
  }
  for (let i = 0; i < bad.length;) {
    let j = i;
    while (j + 1 < bad.length && bad[j + 1].no === bad[j].no + 1
      && bad[j + 1].kind === bad[i].kind) j++;
    const lines = i === j ? `line ${bad[i].no}` : `lines ${bad[i].no}-${bad[j].no}`;
    find(bad[i].kind, `${lines}: ${bad[i].why}`, { file });
    i = j + 1;
  }
  let last = -1;
  const byChunk = new Set();
  for (const e of good) {
    const r = e.record;
    if (r.seq <= last) {
      find("reordered", `line ${e.no}: trail seq ${r.seq} comes after seq ${last}`,
        { file, seq: r.seq });
    }
    last = Math.max(last, r.seq);
  }
  const kept = dedupe(good, find, "trail line");
  for (const e of [...kept].sort((a, b) => a.no - b.no)) {
    const r = e.record;
    const key = `${r.recording_id}\u0000${r.segment_index}\u0000${r.chunk}`;
    if (byChunk.has(key)) {
      find("duplicate", `line ${e.no}: a second trail record for ${r.recording_id} segment `
        + `${r.segment_index} chunk ${r.chunk}`, { file, seq: r.seq, recording_id: r.recording_id,
        segment_index: r.segment_index });
    }
    byChunk.add(key);
  }
  const missing = walk(kept, first, find, "trail_missing", "trail line", file);
  return { bySeq: new Map(kept.map((e) => [e.record.seq, e.record])), missing, first };
}
