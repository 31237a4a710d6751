// Signature suites (docs/evidence-format.md, "Version 4"): a device key is Ed25519 (32 bytes,
// a key in a file) or ECDSA P-256 with SHA-256 (the 65-byte SEC1 uncompressed point 0x04‖X‖Y,
// a key in a TPM). The suite of a raw public key follows from its length. Both sign the same
// message; an ECDSA signature is r‖s (32 bytes each, big-endian) and must be low-S.

import { ed25519Verify } from "./canonical.js";

export const ED25519 = "ed25519";
export const ECDSA_P256 = "ecdsa-p256-sha256";
export const SUITES = [ED25519, ECDSA_P256];

/** What each suite is, in words for the page. */
export const SUITE_WORDS = {
  [ED25519]: "Ed25519 (key held in a file)",
  [ECDSA_P256]: "ECDSA P-256 with SHA-256 (key held in a TPM)",
};

// the order of the P-256 group; a signature with s > N/2 is refused (the other of the two
// valid signatures for the same r would give the same record another line, another hash)
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;
const HALF_N = N >> 1n;

/** The suite of a raw public key, or null when it is neither form. */
export function suiteOf(pub) {
  if (!(pub instanceof Uint8Array)) return null;
  if (pub.length === 32) return ED25519;
  if (pub.length === 65 && pub[0] === 0x04) return ECDSA_P256;
  return null;
}

function bigOf(bytes) {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/** Whether a 64-byte r‖s has s ≤ n/2 (and s ≠ 0). */
export function isLowS(sig) {
  if (!(sig instanceof Uint8Array) || sig.length !== 64) return false;
  const s = bigOf(sig.subarray(32));
  return s > 0n && s <= HALF_N;
}

async function importP256(pub) {
  return crypto.subtle.importKey("raw", pub, { name: "ECDSA", namedCurve: "P-256" }, false,
    ["verify"]);
}

/** Whether a 65-byte 0x04‖X‖Y is a point on the curve (WebCrypto checks it on import). */
export async function isP256Point(pub) {
  if (suiteOf(pub) !== ECDSA_P256) return false;
  try {
    await importP256(pub);
    return true;
  } catch {
    return false;
  }
}

export async function p256Verify(pub, sig, msg) {
  if (suiteOf(pub) !== ECDSA_P256 || !isLowS(sig)) return false;
  try {
    const key = await importP256(pub);
    return await crypto.subtle.verify({ name: "ECDSA", hash: "SHA-256" }, key, sig, msg);
  } catch {
    return false; // not a point on the curve, or r/s out of range
  }
}

/** Whether `sig` is the device key's signature of `msg`, in the suite the key's form gives. */
export async function verifySignature(pub, msg, sig) {
  const suite = suiteOf(pub);
  if (suite === ED25519) return ed25519Verify(pub, sig, msg);
  if (suite === ECDSA_P256) return p256Verify(pub, sig, msg);
  return false;
}
