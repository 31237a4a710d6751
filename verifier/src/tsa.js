// RFC 3161 time-stamp tokens (docs/evidence-format.md, "Checking a token"): DER, X.509 and
// CMS just far enough to check a token under one CA certificate, with WebCrypto (ECDSA P-256/
// P-384, RSA PKCS#1 v1.5). verifyToken(token, digest, caPem) -> genTime in Unix µs, or throws
// an Error whose message starts with the reason (malformed, untrusted, not_a_tsa,
// bad_signature, wrong_digest).

import { b64decode, concat, equalBytes, td } from "./canonical.js";

function fail(reason, detail) {
  throw new Error(`${reason}: ${detail}`);
}

/** One DER element at pos: {tag, start (content), end, head (element start)}. */
function el(b, pos, limit = b.length) {
  if (pos + 2 > limit) fail("malformed", "DER cut short");
  const tag = b[pos];
  let len = b[pos + 1];
  let start = pos + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4 || start + n > limit) fail("malformed", "DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i];
    start += n;
  }
  if (start + len > limit) fail("malformed", "DER element runs past its parent");
  return { tag, start, end: start + len, head: pos, b };
}

function kids(node) {
  const out = [];
  for (let p = node.start; p < node.end;) {
    const k = el(node.b, p, node.end);
    out.push(k);
    p = k.end;
  }
  return out;
}

const bytesOf = (n) => n.b.subarray(n.start, n.end);
const whole = (n) => n.b.subarray(n.head, n.end);

function expect(n, tag, what) {
  if (!n || n.tag !== tag) fail("malformed", `${what}: expected tag ${tag}`);
  return n;
}

function oid(n) {
  const b = bytesOf(expect(n, 0x06, "OID"));
  const out = [Math.floor(b[0] / 40), b[0] % 40];
  let v = 0;
  for (let i = 1; i < b.length; i++) {
    v = v * 128 + (b[i] & 0x7f);
    if (!(b[i] & 0x80)) {
      out.push(v);
      v = 0;
    }
  }
  return out.join(".");
}

function intBytes(n) {
  return bytesOf(expect(n, 0x02, "INTEGER"));
}

function smallInt(n) {
  return intBytes(n).reduce((a, x) => a * 256 + x, 0);
}

function parseTime(n) {
  const s = td.decode(bytesOf(n));
  let m;
  if (n.tag === 0x17 && (m = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s))) {
    const y = Number(m[1]);
    return Date.UTC(y < 50 ? 2000 + y : 1900 + y, m[2] - 1, m[3], m[4], m[5], m[6]) * 1000;
  }
  if (n.tag === 0x18 && (m = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,6}))?Z$/.exec(s))) {
    if (m[7] && m[7].endsWith("0")) fail("malformed", "genTime fraction with a trailing zero");
    const frac = m[7] ? Number(m[7].padEnd(6, "0")) : 0;
    return Date.UTC(m[1], m[2] - 1, m[3], m[4], m[5], m[6]) * 1000 + frac;
  }
  fail("malformed", `not a DER time: ${s}`);
}

const HASH = { "2.16.840.1.101.3.4.2.1": "SHA-256", "2.16.840.1.101.3.4.2.2": "SHA-384",
  "2.16.840.1.101.3.4.2.3": "SHA-512" };
const SIG = { "1.2.840.10045.4.3.2": ["ECDSA", "SHA-256"], "1.2.840.10045.4.3.3": ["ECDSA", "SHA-384"],
  "1.2.840.10045.4.3.4": ["ECDSA", "SHA-512"], "1.2.840.113549.1.1.11": ["RSA", "SHA-256"],
  "1.2.840.113549.1.1.12": ["RSA", "SHA-384"], "1.2.840.113549.1.1.13": ["RSA", "SHA-512"],
  "1.2.840.113549.1.1.1": ["RSA", null], "1.2.840.10045.2.1": ["ECDSA", null] };
const CURVE = { "1.2.840.10045.3.1.7": ["P-256", 32], "1.3.132.0.34": ["P-384", 48] };

function parseCert(n) {
  const [tbs, sigAlg, sig] = kids(expect(n, 0x30, "certificate"));
  const t = kids(expect(tbs, 0x30, "tbsCertificate"));
  let i = t[0].tag === 0xa0 ? 1 : 0;
  const serial = intBytes(t[i]);
  const issuer = whole(t[i + 2]);
  const [nb, na] = kids(t[i + 3]);
  const subject = whole(t[i + 4]);
  const spki = t[i + 5];
  const exts = new Map();
  for (const x of t.slice(i + 6)) {
    if (x.tag !== 0xa3) continue;
    for (const e of kids(kids(x)[0])) {
      const parts = kids(e);
      const critical = parts.length === 3 && parts[1].tag === 0x01 && bytesOf(parts[1])[0] !== 0;
      exts.set(oid(parts[0]), { critical, value: bytesOf(parts[parts.length - 1]) });
    }
  }
  const [alg, curve] = kids(kids(spki)[0]);
  return { tbs: whole(tbs), sigAlg: oid(kids(sigAlg)[0]), sig: bytesOf(sig).subarray(1),
    serial, issuer, subject, notBefore: parseTime(nb), notAfter: parseTime(na),
    spki: whole(spki), keyAlg: oid(alg), curve: curve && curve.tag === 0x06 ? oid(curve) : null,
    exts };
}

function isCA(cert) {
  const bc = cert.exts.get("2.5.29.19");
  if (!bc) return false;
  const seq = el(bc.value, 0);
  const k = kids(seq);
  return k.length > 0 && k[0].tag === 0x01 && bytesOf(k[0])[0] !== 0;
}

function rawEcdsa(der, size) {
  const [r, s] = kids(el(der, 0)).map((x) => {
    let v = bytesOf(x);
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    const out = new Uint8Array(size);
    out.set(v, size - v.length);
    return out;
  });
  return concat(r, s);
}

async function verifySig(cert, sigAlgOid, hashName, sig, data) {
  const [kind, h] = SIG[sigAlgOid] || [];
  const hash = h || hashName;
  if (!kind || !hash) return false;
  try {
    if (kind === "ECDSA") {
      const [curve, size] = CURVE[cert.curve] || [];
      if (!curve) return false;
      const key = await crypto.subtle.importKey("spki", cert.spki,
        { name: "ECDSA", namedCurve: curve }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "ECDSA", hash }, key, rawEcdsa(sig, size), data);
    }
    const key = await crypto.subtle.importKey("spki", cert.spki,
      { name: "RSASSA-PKCS1-v1_5", hash }, false, ["verify"]);
    return await crypto.subtle.verify("RSASSA-PKCS1-v1_5", key, sig, data);
  } catch {
    return false;
  }
}

export function pemCert(pemBytes) {
  const text = typeof pemBytes === "string" ? pemBytes : td.decode(pemBytes);
  const m = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(text);
  const der = m ? b64decode(m[1].replace(/\s+/g, "")) : null;
  if (!der) throw new Error("not a PEM certificate");
  return parseCert(el(der, 0));
}

function parseToken(token) {
  const ci = kids(expect(el(token, 0), 0x30, "ContentInfo"));
  if (oid(ci[0]) !== "1.2.840.113549.1.7.2") fail("malformed", "not signedData");
  const sd = kids(expect(kids(expect(ci[1], 0xa0, "content"))[0], 0x30, "SignedData"));
  const encap = kids(sd[2]);
  if (oid(encap[0]) !== "1.2.840.113549.1.9.16.1.4") fail("malformed", "not a TSTInfo");
  const eContent = bytesOf(expect(kids(expect(encap[1], 0xa0, "eContent"))[0], 0x04, "eContent"));
  const certs = sd.filter((x) => x.tag === 0xa0).flatMap((x) => kids(x))
    .filter((x) => x.tag === 0x30).map(parseCert);
  const signers = kids(expect(sd[sd.length - 1], 0x31, "signerInfos"));
  if (signers.length !== 1) fail("malformed", "not exactly one SignerInfo");
  const tst = kids(expect(el(eContent, 0), 0x30, "TSTInfo"));
  if (smallInt(tst[0]) !== 1) fail("malformed", "TSTInfo version is not 1");
  const [alg, hashed] = kids(tst[2]);
  if (oid(kids(alg)[0]) !== "2.16.840.1.101.3.4.2.1") fail("malformed", "imprint is not SHA-256");
  const genTime = parseTime(expect(tst[4], 0x18, "genTime"));
  return { eContent, certs, signer: kids(signers[0]), imprint: bytesOf(hashed), genTime };
}

async function chainOk(signer, certs, ca, at) {
  const valid = (c) => c.notBefore <= at && at <= c.notAfter;
  if (!isCA(ca) || !valid(ca)) return false;
  let cur = signer;
  for (let depth = 0; depth <= 4; depth++) {
    if (!valid(cur)) return false;
    if (equalBytes(cur.issuer, ca.subject)
      && (await verifySig(ca, cur.sigAlg, null, cur.sig, cur.tbs))) return true;
    const up = certs.find((c) => c !== cur && isCA(c) && equalBytes(cur.issuer, c.subject));
    if (!up || !(await verifySig(up, cur.sigAlg, null, cur.sig, cur.tbs))) return false;
    cur = up;
  }
  return false;
}

/** The token's genTime (Unix µs) when it verifies over `digest` under the CA; else throws. */
export async function verifyToken(token, digest, caPem) {
  let t;
  try {
    t = parseToken(token);
  } catch (e) {
    fail("malformed", e.message);
  }
  const ca = pemCert(caPem);
  const si = t.signer;
  const sid = kids(expect(si[1], 0x30, "sid (issuerAndSerialNumber)"));
  const issuer = whole(sid[0]);
  const serial = intBytes(sid[1]);
  const cert = t.certs.find((c) => equalBytes(c.issuer, issuer) && equalBytes(c.serial, serial));
  if (!cert || !(await chainOk(cert, t.certs, ca, t.genTime))) {
    fail("untrusted", "the signer's certificate is not issued by the CA given");
  }
  const eku = cert.exts.get("2.5.29.37");
  const purposes = eku ? kids(el(eku.value, 0)).map(oid) : [];
  if (!eku || !eku.critical || purposes.join() !== "1.3.6.1.5.5.7.3.8") {
    fail("not_a_tsa", "the signer's certificate is not for time-stamping alone");
  }
  const hashName = HASH[oid(kids(si[2])[0])];
  let k = 3;
  let attrsOk = false;
  let signed = null;
  if (si[k].tag === 0xa0) {
    const attrs = si[k];
    signed = concat(new Uint8Array([0x31]), whole(attrs).subarray(1));
    for (const a of kids(attrs)) {
      const [type, values] = kids(a);
      if (oid(type) === "1.2.840.113549.1.9.4" && hashName) {
        const want = bytesOf(kids(values)[0]);
        const got = new Uint8Array(await crypto.subtle.digest(hashName, t.eContent));
        attrsOk = equalBytes(want, got);
      }
    }
    k++;
  }
  const sigAlg = oid(kids(si[k])[0]);
  const sig = bytesOf(si[k + 1]);
  if (!signed || !attrsOk || !(await verifySig(cert, sigAlg, hashName, sig, signed))) {
    fail("bad_signature", "the CMS signature does not verify");
  }
  if (!equalBytes(t.imprint, digest)) fail("wrong_digest", "the token is over other bytes");
  return t.genTime;
}
