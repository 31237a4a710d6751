// A small zip reader (stored and deflated members), enough for an exhibit's .zip
// (bwv dock export writes one top folder; it is dropped, as `bwv verify` does).
// Deflate through the browser's DecompressionStream("deflate-raw"); no third-party code.

const EOCD_SIG = 0x06054b50;
const CEN_SIG = 0x02014b50;
const LOC_SIG = 0x04034b50;

async function inflateRaw(data) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function findEocd(view) {
  const min = Math.max(0, view.byteLength - 22 - 65535);
  for (let i = view.byteLength - 22; i >= min; i--) {
    if (view.getUint32(i, true) === EOCD_SIG) return i;
  }
  throw new Error("not a zip file (no end of central directory)");
}

// Map of member name -> Uint8Array (folders left out), the single top folder dropped.
export async function readZip(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const eocd = findEocd(view);
  const count = view.getUint16(eocd + 10, true);
  let p = view.getUint32(eocd + 16, true);
  const files = new Map();
  const dec = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (view.getUint32(p, true) !== CEN_SIG) throw new Error("zip: damaged central directory");
    const method = view.getUint16(p + 10, true);
    const csize = view.getUint32(p + 20, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    const local = view.getUint32(p + 42, true);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
    if (name.endsWith("/")) continue;
    if (view.getUint32(local, true) !== LOC_SIG) throw new Error(`zip: ${name}: damaged header`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const raw = bytes.subarray(start, start + csize);
    if (method === 0) files.set(name, raw.slice());
    else if (method === 8) files.set(name, await inflateRaw(raw));
    else throw new Error(`zip: ${name}: compression method ${method} not supported`);
  }
  return dropTopFolder(files);
}

export function dropTopFolder(files) {
  const names = [...files.keys()];
  const tops = new Set(names.map((n) => n.split("/")[0]));
  if (names.length === 0 || tops.size !== 1 || !names.every((n) => n.includes("/"))) return files;
  const cut = [...tops][0].length + 1;
  return new Map(names.map((n) => [n.slice(cut), files.get(n)]));
}
