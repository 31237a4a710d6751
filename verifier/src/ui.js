// The page: trust anchors, the exhibit (dropped folder, .zip, or picked files), the report.
// Uses readZip/dropTopFolder (zip.js) and verifyBundle (verify.js), inlined before it.
import { readZip, dropTopFolder } from "./zip.js";
import { verifyBundle } from "./verify.js";
import { SUITE_WORDS } from "./suites.js";

const $ = (id) => document.getElementById(id);
const BAD = new Set(["altered", "missing", "reordered", "substituted", "unsigned", "duplicated",
  "extra", "incomplete", "cut_short", "equivocation"]);

// a device key is Ed25519 (64 hex) or a TPM's P-256 point (130 hex); the others are 32 bytes
function hexKey(text, what, p256 = false) {
  const t = (text || "").trim().split(/\s+/)[0] || "";
  if (!t) return undefined;
  if (!/^[0-9a-fA-F]{64}$/.test(t) && !(p256 && /^04[0-9a-fA-F]{128}$/.test(t))) {
    throw new Error(`${what}: not a 32-byte key${p256 ? " or a 65-byte P-256 point" : ""} in hex`);
  }
  return Uint8Array.from(t.match(/../g).map((h) => parseInt(h, 16)));
}

let checkpointBytes;

async function anchorsFromForm() {
  const a = {
    devicePub: hexKey($("device-pub").value, "device public key", true),
    dockPub: hexKey($("dock-pub").value, "dock public key"),
    agencyPub: hexKey($("agency-pub").value, "agency public key"),
  };
  const vk = $("witness-vkeys").value.split("\n").map((l) => l.trim()).filter(Boolean);
  if (vk.length) a.witnessVkeys = vk;
  if (checkpointBytes) a.checkpoint = checkpointBytes;
  return a;
}

async function readEntry(entry, prefix, out) {
  if (entry.isFile) {
    const file = await new Promise((ok, no) => entry.file(ok, no));
    out.set(prefix + entry.name, new Uint8Array(await file.arrayBuffer()));
    return;
  }
  const reader = entry.createReader();
  for (;;) {
    const batch = await new Promise((ok, no) => reader.readEntries(ok, no));
    if (!batch.length) break;
    for (const e of batch) await readEntry(e, `${prefix}${entry.name}/`, out);
  }
}

async function filesFromList(list) {
  if (list.length === 1 && /\.zip$/i.test(list[0].name)) {
    return readZip(new Uint8Array(await list[0].arrayBuffer()));
  }
  const out = new Map();
  for (const f of list) {
    out.set(f.webkitRelativePath || f.name, new Uint8Array(await f.arrayBuffer()));
  }
  return dropTopFolder(out);
}

function el(tag, attrs = {}, text = "") {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text) e.textContent = text;
  return e;
}

const utc = (us) => (us == null ? "?" : new Date(us / 1000).toISOString().replace("T", " ")
  .replace(/\.\d+Z$/, " UTC"));
function bounds(t0, t1) {
  if (t0 != null && t1 != null) return `recorded between ${utc(t0)} and ${utc(t1)}`;
  if (t0 != null) return `recorded after ${utc(t0)} (no later bound: no time-stamp)`;
  if (t1 != null) return `recorded before ${utc(t1)} (no earlier bound: no time sync)`;
  return "no time bounds (neither a time sync nor a time-stamp)";
}
const cls = (status) => (BAD.has(status) ? "st-bad" : status);

function renderVerdict(report) {
  const v = $("verdict");
  v.className = report.ok ? "ok" : "bad";
  v.textContent = report.ok ? "VERIFIED" : "NOT VERIFIED";
  const suite = SUITE_WORDS[report.suite];
  $("trusted").textContent = `Key trusted: ${report.trusted || "?"}`
    + (suite ? `; the records are signed with ${suite}` : "");
}

function renderRecordings(report) {
  const box = $("recordings");
  box.replaceChildren();
  for (const r of report.recordings || []) {
    const p = el("p", { class: "recording" });
    p.append(el("b", {}, `Recording ${r.recording_id}: `), el("span", { class: cls(r.status) }, r.status));
    p.append(` — ${bounds(r.recorded_after_us, r.recorded_before_us)}`);
    if (r.wall_start_us != null) {
      p.append(`; the camera's clock said ${utc(r.wall_start_us)} to ${utc(r.wall_end_us)}`
        + ` (${r.wall_quality || "unrated"})`);
    }
    box.append(p);
  }
}

function renderSegment(s, files) {
  const div = el("div", { class: "segment" });
  const head = el("p");
  head.append(el("b", {}, `Segment ${s.segment_index ?? "?"}`), ` ${s.file || "(no file)"}: `,
    el("span", { class: cls(s.status) }, s.status));
  div.append(head);
  const data = s.file && files.get(s.file);
  if (data && /\.mp4$/i.test(s.file)) {
    const video = el("video", { controls: "", preload: "metadata" });
    video.addEventListener("loadeddata", () => { video.dataset.plays = "yes"; });
    video.addEventListener("error", () => video.replaceWith(el("p", { class: "note noplay" },
      "This file does not play in this browser (its fragments are checked all the same).")));
    video.src = URL.createObjectURL(new Blob([data], { type: "video/mp4" }));
    div.append(video);
  }
  const bar = el("div", { class: "timeline", title: "fragments: green verified, red not" });
  const table = el("table");
  const th = el("tr");
  th.append(el("th", {}, "fragment"), el("th", {}, "status"));
  table.append(th);
  for (const c of s.chunks || []) {
    const name = c.chunk === 0 ? "init" : c.chunk == null ? "extra" : `#${c.chunk}`;
    bar.append(el("span", { class: c.status === "authentic" ? "good" : "badc",
      title: `${name}: ${c.status}` }));
    const tr = el("tr");
    tr.append(el("td", {}, name), el("td", { class: cls(c.status) }, c.status));
    table.append(tr);
  }
  div.append(bar, table);
  return div;
}

function render(report, files) {
  $("result").hidden = false;
  renderVerdict(report);
  renderRecordings(report);
  $("segments").replaceChildren(...(report.segments || []).map((s) => renderSegment(s, files)));
  $("findings").replaceChildren(...(report.findings || []).map((f) =>
    el("li", {}, `${f.kind}: ${f.detail}${f.file ? ` (${f.file})` : ""}`)));
}

// Each check ends by counting itself on <body data-checks="N"> (the tests wait on it).
function counted(report) {
  window.bwvLastReport = report;
  document.body.dataset.checks = String(Number(document.body.dataset.checks || 0) + 1);
  return report;
}

function renderError(message) {
  $("result").hidden = false;
  $("verdict").className = "error";
  $("verdict").textContent = `could not check: ${message}`;
  for (const id of ["trusted", "recordings", "segments", "findings"]) $(id).replaceChildren();
}

async function run(files, anchors) {
  try {
    if (!anchors.devicePub && !anchors.dockPub) {
      throw new Error("give the key to trust: the device's public key, or the enrolling dock's"
        + " (from the agency, not from the exhibit)");
    }
    const report = await verifyBundle(files, anchors);
    render(report, files);
    return counted(report);
  } catch (err) {
    renderError(err.message || String(err));
    return counted({ error: err.message || String(err) });
  }
}

async function runFromForm(getFiles) {
  let anchors;
  try {
    anchors = await anchorsFromForm();
    return run(await getFiles(), anchors);
  } catch (err) {
    renderError(err.message || String(err));
    counted({ error: err.message || String(err) });
  }
}

function b64(s) {
  return Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
}

// For the tests: files {name: base64}, anchors with keys in hex, checkpoint in base64.
window.bwvVerifyFiles = async (files, anchors) => {
  const map = dropTopFolder(new Map(Object.entries(files).map(([n, d]) => [n, b64(d)])));
  const a = {};
  for (const k of ["devicePub", "dockPub", "agencyPub"]) {
    if (anchors[k]) a[k] = hexKey(anchors[k], k, k === "devicePub");
  }
  if (anchors.witnessVkeys) a.witnessVkeys = anchors.witnessVkeys;
  if (anchors.checkpoint) a.checkpoint = b64(anchors.checkpoint);
  return run(map, a);
};

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  const items = [...e.dataTransfer.items].map((i) => i.webkitGetAsEntry()).filter(Boolean);
  const list = [...e.dataTransfer.files];
  runFromForm(async () => {
    if (items.length === 1 && items[0].isDirectory) {
      const out = new Map();
      await readEntry(items[0], "", out);
      return dropTopFolder(out);
    }
    return filesFromList(list);
  });
});
$("pick-zip").addEventListener("change", (e) => runFromForm(() => filesFromList([...e.target.files])));
$("pick-dir").addEventListener("change", (e) => runFromForm(() => filesFromList([...e.target.files])));
$("checkpoint").addEventListener("change", async (e) => {
  checkpointBytes = new Uint8Array(await e.target.files[0].arrayBuffer());
});
$("key-file").addEventListener("change", async (e) => {
  const text = await e.target.files[0].text();
  const target = $("device-pub").value.trim() ? $("dock-pub") : $("device-pub");
  target.value = text.trim();
});
window.bwvReady = true;
document.body.dataset.checks = "0";
