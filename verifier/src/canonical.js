// Canonical encoding of signed records (docs/evidence-format.md, "Canonical encoding"),
// bytes, hex, base64 and SHA-256 / Ed25519 through WebCrypto.

export const te = new TextEncoder();
export const td = new TextDecoder("utf-8", { fatal: true });

export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

export function unhex(s) {
  if (typeof s !== "string" || !/^([0-9a-f]{2})*$/.test(s)) return null;
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

export function b64encode(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    s += B64[(n >> 18) & 63] + B64[(n >> 12) & 63];
    s += i + 1 < bytes.length ? B64[(n >> 6) & 63] : "=";
    s += i + 2 < bytes.length ? B64[n & 63] : "=";
  }
  return s;
}

/** Standard base64 with padding; null unless canonical (re-encodes to the same text). */
export function b64decode(s) {
  if (typeof s !== "string" || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) {
    return null;
  }
  const pad = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < s.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = s[i + j];
      n = (n << 6) | (c === "=" ? 0 : B64.indexOf(c));
    }
    if (o < out.length) out[o++] = (n >> 16) & 255;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return b64encode(out) === s ? out : null;
}

export function concat(...parts) {
  const len = parts.reduce((a, p) => a + p.length, 0);
  const out = new Uint8Array(len);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256hex(bytes) {
  return hex(await sha256(bytes));
}

/** Key id: the first 16 hex digits of SHA-256 of a raw public key (32 or 65 bytes). */
export async function keyId(pub) {
  return (await sha256hex(pub)).slice(0, 16);
}

export async function ed25519Verify(pub, sig, msg) {
  if (!pub || pub.length !== 32 || !sig || sig.length !== 64) return false;
  try {
    const key = await crypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, [
      "verify",
    ]);
    return await crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg);
  } catch {
    return false;
  }
}

function encodeString(s) {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) throw new Error("unpaired surrogate");
      out += s[i] + s[i + 1];
      i++;
      continue;
    }
    if (c >= 0xdc00 && c <= 0xdfff) throw new Error("unpaired surrogate");
    if (c === 0x22) out += '\\"';
    else if (c === 0x5c) out += "\\\\";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0c) out += "\\f";
    else if (c === 0x0d) out += "\\r";
    else if (c < 0x20) out += "\\u" + c.toString(16).padStart(4, "0");
    else out += s[i];
  }
  return out + '"';
}

/** The canonical text of a value; throws on what the encoding cannot hold. */
export function canonical(v) {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new Error("not an integer");
    return String(v); // -0 is written 0 (JCS); a reader still refuses the text "-0"
  }
  if (typeof v === "string") return encodeString(v);
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  if (typeof v === "object") {
    const keys = Object.keys(v).sort(); // UTF-16 code unit order
    return "{" + keys.map((k) => encodeString(k) + ":" + canonical(v[k])).join(",") + "}";
  }
  throw new Error("not a JSON value");
}

export function canonicalBytes(v) {
  return te.encode(canonical(v));
}

/**
 * Parse bytes that MUST be canonical: JSON, re-encoded byte for byte identical. A duplicate
 * key, a float, an out-of-range integer, whitespace all change the re-encoding.
 * Returns the value or throws.
 */
export function parseCanonical(bytes) {
  const text = td.decode(bytes);
  const value = JSON.parse(text);
  const again = canonicalBytes(value);
  if (!equalBytes(again, bytes)) throw new Error("not canonical");
  return value;
}

/** JSON parse of bytes, or undefined. */
export function parseJson(bytes) {
  try {
    return JSON.parse(td.decode(bytes));
  } catch {
    return undefined;
  }
}
