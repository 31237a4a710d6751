// The log check of an exhibit (docs/evidence-format.md, "The transparency log" and "The log
// check of an exhibit"): signed notes, checkpoints, cosignature/v1, RFC 9162 inclusion proofs,
// the `first` member. T1 needs an RFC 3161 token check, not done here: T1 stays null.

import { b64decode, concat, ed25519Verify, equalBytes, keyId, parseJson, sha256, td, te } from "./canonical.js";

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

/** Check one checkpoint note: {cp, note} when trusted, else the finding it gives. */
async function trust(bytes, dockPub, witnesses) {
  const note = bytes ? parseNote(bytes) : null;
  const cp = note ? parseCheckpoint(note) : null;
  if (!cp) return { kind: "altered", why: "not a readable checkpoint note" };
  if (dockPub && !(await dockSigned(note, cp, dockPub))) {
    return { kind: "altered", why: "not signed by the dock key given", cp };
  }
  if (!(await witnessed(note, witnesses))) {
    return { kind: "unwitnessed", why: "carries no valid cosignature by a witness key given", cp };
  }
  return { cp, note };
}

function proofList(x) {
  if (!Array.isArray(x)) return null;
  const out = x.map((s) => b64decode(s));
  return out.every((p) => p && p.length === 32) ? out : null;
}

function isInt(x) {
  return Number.isSafeInteger(x);
}

/** log/proofs.jsonl: record_sha256 -> line object; bad lines found `altered`. */
function readProofs(files, find) {
  const bytes = files.get("log/proofs.jsonl");
  const out = new Map();
  if (!bytes) return out;
  let text;
  try {
    text = td.decode(bytes);
  } catch {
    find("altered", "log/proofs.jsonl is not UTF-8", { file: "log/proofs.jsonl" });
    return out;
  }
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    const o = parseJson(te.encode(line));
    const ok = o && typeof o === "object" && typeof o.record_sha256 === "string"
      && isInt(o.leaf_index) && isInt(o.tree_size) && proofList(o.inclusion);
    if (!ok) {
      find("altered", `log/proofs.jsonl line ${i + 1} is not a proof line`,
        { file: "log/proofs.jsonl" });
    } else out.set(o.record_sha256, o);
  });
  return out;
}

async function readWitnesses(lines) {
  const out = [];
  for (const l of lines) {
    const k = await parseVkey(l.trim());
    if (k) out.push(k);
  }
  return out;
}

export async function checkLog(ctx) {
  const { files, anchors, find } = ctx;
  const witnesses = await readWitnesses(anchors.witnessVkeys);
  const log = { checked: true, included: {}, first: {}, upper_bounds_us: {},
    time_note: "T1 not computed: this verifier does not check RFC 3161 tokens" };
  const trusted = [];
  const bundle = files.get("log/checkpoint");
  const fileCp = "log/checkpoint";
  let b = null;
  if (!bundle) find("unwitnessed", "the exhibit has no log/checkpoint", { file: fileCp });
  else {
    b = await trust(bundle, anchors.dockPub, witnesses);
    if (b.kind) find(b.kind, `log/checkpoint ${b.why}`, { file: fileCp });
    else trusted.push(b.cp);
  }
  let w = null;
  if (anchors.checkpoint) {
    w = await trust(anchors.checkpoint, anchors.dockPub, witnesses);
    if (w.kind) find(w.kind, `the witness's checkpoint ${w.why}`, { file: null });
    else trusted.push(w.cp);
  }
  if (b && !b.kind && w && !w.kind) {
    if (b.cp.origin !== w.cp.origin) {
      find("substituted", "the bundle's checkpoint is of another log than the witness's",
        { file: fileCp });
    } else if (b.cp.size === w.cp.size && !equalBytes(b.cp.root, w.cp.root)) {
      find("equivocation", "the log forked: the witness's checkpoint has another root at the "
        + "same size", { file: fileCp });
    }
  }
  for (const e of ctx.chain.records) {
    if (e.record.recording_id !== undefined) log.upper_bounds_us[e.record.recording_id] = null;
  }
  if (bundle && (!b || b.kind) && (!w || w.kind)) return log;
  const bySize = new Map();
  for (const cp of trusted) if (!bySize.has(cp.size)) bySize.set(cp.size, cp);
  const proofs = readProofs(files, find);
  for (const e of ctx.chain.records) {
    const where = { file: e.file, seq: e.record.seq };
    const line = proofs.get(e.hash);
    if (!line) {
      find("withheld", `record ${e.record.seq} is not shown in the witnessed log`, where);
      continue;
    }
    const cp = bySize.get(line.tree_size);
    if (!cp) {
      find("withheld", `record ${e.record.seq}'s proof is for a tree of ${line.tree_size} `
        + "leaves, which no trusted checkpoint has", where);
      continue;
    }
    const leaf = await sha256(concat(new Uint8Array([0]), te.encode("bwv:log-record:v2\0"),
      e.bytes));
    if (!(await verifyInclusion(line.leaf_index, line.tree_size, leaf,
      proofList(line.inclusion), cp.root))) {
      find("altered", `record ${e.record.seq}'s inclusion proof does not lead to the root`, where);
      continue;
    }
    log.included[e.record.seq] = [line.leaf_index, line.tree_size];
    await checkFirst(files, find, e, line, leaf, log);
  }
  return log;
}

async function checkFirst(files, find, e, line, leaf, log) {
  const f = line.first;
  const inc = f && typeof f === "object" ? proofList(f.inclusion) : null;
  if (!f || !isInt(f.tree_size) || f.tree_size < 1 || !inc) {
    find("altered", `record ${e.record.seq}'s proof line has no well-formed first member`,
      { file: "log/proofs.jsonl", seq: e.record.seq });
    return;
  }
  const m = f.tree_size;
  const name = `log/checkpoints/${m}`;
  const where = { file: name, seq: e.record.seq };
  if (m <= line.leaf_index) {
    find("altered", `first.tree_size ${m} does not include leaf ${line.leaf_index}`, where);
    return;
  }
  const bytes = files.get(name);
  const note = bytes ? parseNote(bytes) : null;
  const cp = note ? parseCheckpoint(note) : null;
  if (!cp || cp.size !== m) {
    find("altered", `${name} is absent, unreadable or of another size`, where);
    return;
  }
  if (!(await verifyInclusion(line.leaf_index, m, leaf, inc, cp.root))) {
    find("altered", `record ${e.record.seq}'s first inclusion proof does not lead to ${name}`,
      where);
    return;
  }
  log.first[e.record.seq] = [m, null];
}
