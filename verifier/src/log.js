// The log check of an exhibit (docs/evidence-format.md, "The transparency log" and "The log
// check of an exhibit"): signed notes, checkpoints, cosignature/v1, RFC 9162 inclusion proofs,
// the `first` member. T1 needs an RFC 3161 token check, not done here: T1 stays null.

import { verifyToken } from "./tsa.js";
import { b64decode, concat, ed25519Verify, equalBytes, keyId, parseJson, sha256, sha256hex, td,
  te } from "./canonical.js";

const EM_DASH = "\u2014 ";
const MAX_U63 = 2n ** 63n - 1n;

async function noteKeyId(name, type, pub) {
  const h = await sha256(concat(te.encode(name + "\n"), new Uint8Array([type]), pub));
  return ((h[0] << 24) >>> 0) + (h[1] << 16) + (h[2] << 8) + h[3];
}

/** A vkey `<name>+<8 hex>+<base64(type || key)>` -> {name, id, type, pub} or null. */
export async function parseVkey(s) {
  const a = s.indexOf("+");
  const b = a < 0 ? -1 : s.indexOf("+", a + 1);
  if (a <= 0 || b < 0) return null;
  const name = s.slice(0, a);
  const idHex = s.slice(a + 1, b);
  const raw = b64decode(s.slice(b + 1));
  if (!/^[0-9a-f]{8}$/.test(idHex) || !raw || raw.length !== 33) return null;
  const type = raw[0];
  const pub = raw.subarray(1);
  const id = parseInt(idHex, 16);
  if ((await noteKeyId(name, type, pub)) !== id) return null;
  return { name, id, type, pub };
}

/** A signed note -> {text (string, with its final newline), body bytes, sigs} or null. */
export function parseNote(bytes) {
  let s;
  try {
    s = td.decode(bytes);
  } catch {
    return null;
  }
  const cut = s.lastIndexOf("\n\n");
  if (cut < 0) return null;
  const text = s.slice(0, cut + 1);
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/.test(text)) return null;
  const lines = s.slice(cut + 2).split("\n");
  if (lines.pop() !== "") return null;
  if (lines.length === 0 || lines.length > 100) return null;
  const sigs = [];
  for (const line of [...new Set(lines)]) {
    if (!line.startsWith(EM_DASH)) return null;
    const rest = line.slice(EM_DASH.length);
    const sp = rest.indexOf(" ");
    const name = rest.slice(0, sp);
    const raw = b64decode(rest.slice(sp + 1));
    if (sp <= 0 || !raw || raw.length < 5 || /[\s+]/u.test(name)) return null;
    const id = ((raw[0] << 24) >>> 0) + (raw[1] << 16) + (raw[2] << 8) + raw[3];
    sigs.push({ name, id, sig: raw.subarray(4) });
  }
  return { text, body: te.encode(text), sigs };
}

/** The checkpoint body of a note -> {origin, size, root} or null. */
export function parseCheckpoint(note) {
  const lines = note.text.split("\n");
  lines.pop();
  if (lines.length < 3) return null;
  const [origin, sizeText, rootText, ...ext] = lines;
  if (!origin || !/^(0|[1-9][0-9]*)$/.test(sizeText) || BigInt(sizeText) > MAX_U63) return null;
  const root = b64decode(rootText);
  if (!root || root.length !== 32 || ext.some((l) => l === "")) return null;
  const size = Number(sizeText);
  return { origin, size, root };
}

async function dockSigned(note, cp, dockPub) {
  const kid = await keyId(dockPub);
  const name = `bwv-dock/${kid}`;
  const id = await noteKeyId(name, 0x01, dockPub);
  if (cp.origin !== name) return false;
  const mine = note.sigs.filter((x) => x.name === name && x.id === id);
  if (!mine.length) return false;
  for (const x of mine) {
    if (x.sig.length !== 64 || !(await ed25519Verify(dockPub, x.sig, note.body))) return false;
  }
  return true;
}

async function witnessed(note, witnesses) {
  for (const x of note.sigs) {
    const w = witnesses.find((k) => k.type === 0x04 && k.name === x.name && k.id === x.id);
    if (!w || x.sig.length !== 72) continue;
    let ts = 0n;
    for (let i = 0; i < 8; i++) ts = (ts << 8n) | BigInt(x.sig[i]);
    if (ts > MAX_U63) continue;
    const msg = concat(te.encode(`cosignature/v1\ntime ${ts}\n`), note.body);
    if (await ed25519Verify(w.pub, x.sig.subarray(8), msg)) return true;
  }
  return false;
}

/** RFC 9162 2.1.3.2: does `path` lead from `leaf` at `index` to `root` of a tree of `size`? */
export async function verifyInclusion(index, size, leaf, path, root) {
  if (!(index >= 0 && index < size) || path.some((p) => !p || p.length !== 32)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  const one = new Uint8Array([1]);
  for (const p of path) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(concat(one, p, r));
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await sha256(concat(one, r, p));
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equalBytes(r, root);
}

/** Check one checkpoint note as bwv names it (`what`): {cp, findings}; cp only when trusted. */
async function trust(bytes, dockPub, witnesses, what) {
  if (!bytes) {
    return { findings: [["unwitnessed", `${what}: no checkpoint of the dock's log`, null]] };
  }
  const note = parseNote(bytes);
  const cp = note ? parseCheckpoint(note) : null;
  if (!cp) return { findings: [["altered", `${what}: not a checkpoint note`, what]] };
  const findings = [];
  if (dockPub && !(await dockSigned(note, cp, dockPub))) {
    findings.push(["altered", `${what}: not signed by the dock key given (${cp.origin})`, what]);
  }
  if (!(await witnessed(note, witnesses))) {
    findings.push(["unwitnessed", `${what}: checkpoint ${cp.origin} size ${cp.size} carries no `
      + "valid cosignature by the witness key(s) given", what]);
    return { findings };
  }
  return { cp: findings.length ? null : { ...cp, body: note.body }, findings };
}

function proofList(x) {
  if (!Array.isArray(x)) return null;
  const out = x.map((s) => b64decode(s));
  return out.every((p) => p && p.length === 32) ? out : null;
}

function isInt(x) {
  return Number.isSafeInteger(x);
}

function parseFirst(f) {
  if (!f || typeof f !== "object" || Array.isArray(f)) return { error: "`first` is not an object" };
  if (!isInt(f.tree_size) || f.tree_size < 1) {
    return { error: "`first.tree_size` is not a positive integer" };
  }
  const inclusion = proofList(f.inclusion);
  if (!inclusion) return { error: "`first.inclusion` is not a list of base64 32-byte hashes" };
  return { tree_size: f.tree_size, inclusion };
}

/** log/proofs.jsonl: record_sha256 -> {leaf_index, tree_size, inclusion, first}. */
function readProofs(files, find) {
  const file = "log/proofs.jsonl";
  const bytes = files.get(file);
  const out = new Map();
  if (!bytes) return out;
  let text;
  try {
    text = td.decode(bytes);
  } catch {
    find("altered", "log/proofs.jsonl is not UTF-8", { file });
    return out;
  }
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const o = parseJson(te.encode(line));
    const inclusion = o && typeof o === "object" ? proofList(o.inclusion) : null;
    if (!inclusion || typeof o.record_sha256 !== "string" || !isInt(o.leaf_index)
      || !isInt(o.tree_size)) {
      find("altered", `line ${i + 1}: not an inclusion proof`, { file });
      return;
    }
    const entry = { leaf_index: o.leaf_index, tree_size: o.tree_size, inclusion, first: null };
    out.set(o.record_sha256, entry);
    if (!("first" in o)) {
      find("altered", `line ${i + 1}: no \`first\` member (required)`, { file });
      return;
    }
    const f = parseFirst(o.first);
    if (f.error) find("altered", `line ${i + 1}: a malformed \`first\` (${f.error})`, { file });
    else entry.first = f;
  });
  return out;
}

async function readWitnesses(lines) {
  const out = [];
  for (const l of lines) {
    const k = await parseVkey(l.replace(/#.*/, "").trim());
    if (k) out.push(k);
  }
  return out;
}

const CHAIN_NAME = /^([0-9]{12})\.(manifest|end|time_sync|clock_step)\.json$/;

/** seq (as its file name gives it) -> name of every chain record file (bwv's reading). */
function chainFiles(files) {
  const out = new Map();
  for (const name of [...files.keys()].sort()) {
    const m = CHAIN_NAME.exec(name.slice(name.lastIndexOf("/") + 1));
    if (m && !out.has(Number(m[1]))) out.set(Number(m[1]), name);
  }
  return out;
}

/** genTime (µs) of a token over SHA-256 of `body` under the CA: {t1} or {note} or {error}. */
async function tokenTime(token, body, tsaCa, what) {
  if (!token) return { note: `${what} carries no RFC 3161 timestamp` };
  if (!tsaCa) return { note: "no TSA CA given: the RFC 3161 timestamps are not checked" };
  try {
    return { t1: await verifyToken(token, await sha256(body), tsaCa) };
  } catch (e) {
    return { error: `the RFC 3161 timestamp does not verify (${e.message})` };
  }
}

export async function checkLog(ctx, recordings) {
  const { files, anchors, find } = ctx;
  const witnesses = await readWitnesses(anchors.witnessVkeys);
  const log = { checked: true, included: {}, first: {}, upper_bounds_us: {}, tsa_time_us: null,
    time_note: "" };
  for (const e of ctx.chain.records) {
    if (e.record.recording_id !== undefined) log.upper_bounds_us[e.record.recording_id] = null;
  }
  const fileCp = "log/checkpoint";
  const b = await trust(files.get(fileCp), anchors.dockPub, witnesses, fileCp);
  const w = anchors.checkpoint
    ? await trust(anchors.checkpoint, anchors.dockPub, witnesses, "the witness's checkpoint")
    : null;
  for (const [kind, detail, file] of [...b.findings, ...(w ? w.findings : [])]) {
    find(kind, detail, { file });
  }
  if (b.cp && w && w.cp) {
    if (b.cp.origin !== w.cp.origin) {
      find("substituted", `${fileCp}: checkpoint of log ${b.cp.origin}, the witness's is `
        + w.cp.origin, { file: fileCp });
    } else if (b.cp.size === w.cp.size && !equalBytes(b.cp.root, w.cp.root)) {
      find("equivocation", `${fileCp}: the dock's log ${b.cp.origin} has two trees of size `
        + `${b.cp.size}: the log forked`, { file: fileCp });
    }
  }
  if (!b.cp && files.has(fileCp) && !(w && w.cp)) return log;
  const bySize = new Map();
  for (const cp of [b.cp, w && w.cp]) if (cp && !bySize.has(cp.size)) bySize.set(cp.size, cp);
  const proofs = readProofs(files, find);
  const records = chainFiles(files);
  const seqs = [...records.keys()].sort((x, y) => x - y);
  const leaves = new Map();
  for (const seq of seqs) {
    const name = records.get(seq);
    const bytes = files.get(name);
    const where = { file: name, seq };
    const line = proofs.get(await sha256hex(bytes));
    if (!line) {
      find("withheld", `chain record ${seq} is not shown in the dock's witnessed log (no `
        + "inclusion proof for it)", where);
      continue;
    }
    const cp = bySize.get(line.tree_size);
    if (!cp) {
      find("withheld", `chain record ${seq}: its inclusion proof is for a tree of size `
        + `${line.tree_size}, not a witnessed checkpoint's`, where);
      continue;
    }
    const leaf = await sha256(concat(new Uint8Array([0]), te.encode("bwv:log-record:v2\0"),
      bytes));
    if (!(await verifyInclusion(line.leaf_index, cp.size, leaf, line.inclusion, cp.root))) {
      find("altered", `chain record ${seq}: its inclusion proof (leaf ${line.leaf_index}) does `
        + `not lead to the witnessed root of size ${cp.size}`, where);
      continue;
    }
    log.included[seq] = [line.leaf_index, cp.size];
    leaves.set(seq, { leaf, line });
  }
  if (b.cp) {
    const got = await tokenTime(files.get("log/checkpoint.tsr"), b.cp.body, anchors.tsaCa,
      "the dock's checkpoint");
    log.tsa_time_us = got.t1 ?? null;
    log.time_note = got.note ?? (got.error ? `the checkpoint's ${got.error.slice(4)}` : "");
  }
  const said = new Set();
  const times = new Map();
  const notes = [];
  for (const seq of seqs) {
    const got = leaves.get(seq);
    if (!got || !got.line.first) continue;
    const m = got.line.first.tree_size;
    const f = await checkFirst(files, seq, got.leaf, got.line);
    let t1 = null;
    if (!f) {
      if (!times.has(m)) {
        times.set(m, await tokenTime(files.get(`log/checkpoints/${m}.tsr`),
          firstBody(files.get(`log/checkpoints/${m}`)), anchors.tsaCa, `log/checkpoints/${m}`));
        const tt = times.get(m);
        if (tt.error) find("altered", `log/checkpoints/${m}.tsr: ${tt.error}`,
          { file: `log/checkpoints/${m}.tsr` });
      }
      const tt = times.get(m);
      t1 = tt.t1 ?? null;
      if (tt.note && !notes.includes(tt.note)) notes.push(tt.note);
    }
    log.first[seq] = [m, t1];
    if (f) {
      const key = JSON.stringify(f);
      if (!said.has(key)) find("altered", f.detail, { file: f.file, seq });
      said.add(key);
    }
  }
  if (notes.length && !log.time_note) log.time_note = notes.join("; ");
  applyT1(ctx, log, records, recordings);
  return log;
}

/** A record's T1: its first checkpoint's RFC 3161 time, else the latest's (when included). */
function t1Of(log, seq) {
  if (!(seq in log.included)) return null;
  const f = log.first[seq];
  return f && f[1] !== null ? f[1] : log.tsa_time_us;
}

/** T1 per recording and per segment; claimed wall times after it are time_inconsistent. */
function applyT1(ctx, log, records, recordings) {
  const byRec = new Map();
  const found = new Set();
  for (const [seq, name] of [...records].sort((a, b) => a[0] - b[0])) {
    const o = parseJson(ctx.files.get(name));
    const r = o && o.record;
    if (!r || typeof r !== "object" || typeof r.recording_id !== "string") continue;
    if (!byRec.has(r.recording_id)) byRec.set(r.recording_id, []);
    byRec.get(r.recording_id).push(seq);
    const walls = [r.wall_start_us, r.wall_end_us].filter((w) => Number.isSafeInteger(w));
    const t1 = t1Of(log, seq);
    if (walls.length && t1 !== null && Math.max(...walls) > t1) {
      found.add(r.recording_id);
      ctx.find("time_inconsistent", `segment ${r.recording_id}/${r.segment_index} claims a wall `
        + "time after the time-stamped checkpoint that first includes its manifest",
      { file: name, recording_id: r.recording_id, segment_index: r.segment_index ?? null, seq });
    }
  }
  for (const [id, seqs] of byRec) {
    const last = t1Of(log, Math.max(...seqs));
    const known = seqs.map((x) => t1Of(log, x)).filter((x) => x !== null);
    log.upper_bounds_us[id] = last ?? (known.length ? Math.max(...known) : null);
  }
  for (const rec of recordings) {
    const t1 = log.upper_bounds_us[rec.recording_id];
    if (t1 === null || t1 === undefined) continue;
    rec.recorded_before_us = t1;
    const claims = [rec.wall_start_us, rec.wall_end_us].filter((x) => x !== null);
    if (claims.length && Math.max(...claims) > t1 && !found.has(rec.recording_id)) {
      ctx.find("time_inconsistent", "claims a wall time after the time-stamped checkpoint that "
        + "includes it", { recording_id: rec.recording_id });
    }
  }
}

/** A first checkpoint's body: its text to the first blank line. */
function firstBody(bytes) {
  if (!bytes) return new Uint8Array();
  const i = bytes.findIndex((x, j) => x === 0x0a && bytes[j + 1] === 0x0a);
  return i < 0 ? bytes : bytes.subarray(0, i + 1);
}

/** The first checkpoint that includes the record: null when it holds, else the finding. */
async function checkFirst(files, seq, leaf, line) {
  const { tree_size: m, inclusion } = line.first;
  const name = `log/checkpoints/${m}`;
  const what = `chain record ${seq}: `;
  if (m <= line.leaf_index) {
    return { detail: `${what}its \`first\` tree size ${m} does not include leaf `
      + line.leaf_index, file: null };
  }
  const bytes = files.get(name);
  if (!bytes) return { detail: `${what}the first checkpoint including it (${name}) is not here`,
    file: name };
  let cp = null;
  try { // its body alone: no signature is required on a first checkpoint
    const text = td.decode(bytes);
    const cut = text.indexOf("\n\n");
    cp = parseCheckpoint({ text: (cut < 0 ? text : text.slice(0, cut)) + "\n" });
  } catch { /* not UTF-8 */ }
  if (!cp) return { detail: `${what}${name} is not a checkpoint note`, file: name };
  if (cp.size !== m) return { detail: `${what}${name} names ${cp.size} leaves, not ${m}`, file: name };
  if (!(await verifyInclusion(line.leaf_index, m, leaf, inclusion, cp.root))) {
    return { detail: `${what}its \`first\` inclusion proof (leaf ${line.leaf_index}) does not `
      + `lead to the root of ${name}`, file: name };
  }
  return null;
}
