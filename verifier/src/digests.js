// The stored digest and the plain digest (docs/evidence-format.md, "Stored digest and plain
// digest"): SHA-256 over a domain string and the chunks' SHA-256s, computed from a stored
// file or from the hashes a manifest signs.

import { concat, hex, sha256, te, unhex } from "./canonical.js";
import { parseChunks } from "./segments.js";

const STORED = te.encode("bwv:stored-digest:v3\0");
const PLAIN = te.encode("bwv:plain-digest:v3\0");
const HEX64 = /^[0-9a-f]{64}$/;

async function over(domain, raw) {
  return hex(await sha256(concat(domain, ...raw)));
}

/** hex SHA-256s as raw bytes, or null when one is not 64 hex digits. */
function raws(hashes) {
  if (!Array.isArray(hashes) || !hashes.every((h) => typeof h === "string" && HEX64.test(h))) {
    return null;
  }
  return hashes.map(unhex);
}

/** The stored digest from a header's SHA-256 and the chunks' cipher SHA-256s (hex), or null. */
export async function storedDigestOf(headerSha, cipherShas) {
  const r = raws([headerSha, ...(Array.isArray(cipherShas) ? cipherShas : [null])]);
  return r ? over(STORED, r) : null;
}

/** The plain digest from the non-final chunks' plain SHA-256s (hex), or null. */
export async function plainDigestOf(plainShas) {
  const r = raws(plainShas);
  return r ? over(PLAIN, r) : null;
}

/** The plain digest of plaintext blobs (the non-final chunks' plaintexts, in order). */
export async function plainDigest(blobs) {
  return over(PLAIN, await Promise.all(blobs.map((b) => sha256(b))));
}

/**
 * The stored digest of a stored file's bytes, or null when the file does not split exactly
 * into a header (magic "BWVSEG", bytes 0 .. 116+n with n <= 4096) and whole chunks (u32be
 * length >= 17, then that many bytes): a torn last chunk, bytes left over, a header cut
 * short. The header's version and context are not read here.
 */
export async function storedDigest(b) {
  if (b.length < 12 || String.fromCharCode(...b.subarray(0, 6)) !== "BWVSEG") return null;
  const n = ((b[8] << 24) >>> 0) + (b[9] << 16) + (b[10] << 8) + b[11];
  if (n > 4096 || b.length < 116 + n) return null;
  const { chunks, problem } = parseChunks(b, 116 + n);
  if (problem) return null;
  const raw = await Promise.all([b.subarray(0, 116 + n), ...chunks].map((p) => sha256(p)));
  return over(STORED, raw);
}

/**
 * Why a manifest's stored_digest, plain_digest or plain_size is not the one its own chunks
 * give, or null. Its chunks (already of the right fields, numbered 0..) must be init, then
 * fragments, the last possibly final, and truncated exactly when there is no final chunk.
 */
export async function manifestDigestError(r) {
  const last = r.chunks.length - 1;
  const kindOk = (c, i) => c.kind === (i === 0 ? "init" : "fragment")
    || (c.kind === "final" && i === last);
  const bad = r.chunks.findIndex((c, i) => !kindOk(c, i));
  if (bad >= 0) return `chunks[${bad}] is a ${r.chunks[bad].kind} chunk`;
  if ((last >= 0 && r.chunks[last].kind === "final") === r.truncated) {
    return "truncated must be true exactly when there is no final chunk";
  }
  const stored = await storedDigestOf(r.header_sha256, r.chunks.map((c) => c.cipher_sha256));
  if (stored === null || r.stored_digest !== stored) {
    return "stored_digest is not the stored digest of header_sha256 and chunks[].cipher_sha256";
  }
  const plain = await plainDigestOf(r.chunks.filter((c) => c.kind !== "final")
    .map((c) => c.plain_sha256));
  if (plain === null || r.plain_digest !== plain) {
    return "plain_digest is not the plain digest of the non-final chunks' plain_sha256";
  }
  const plainSize = r.chunks.filter((c) => c.kind !== "final")
    .reduce((a, c) => a + c.plain_size, 0);
  if (r.plain_size !== plainSize) return "plain_size is not the sum of the chunks' plain_size";
  return null;
}
