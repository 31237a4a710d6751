// STUB (J2): stands in for J1's verifier core until i13-J1 is merged.
// verifyBundle(files: Map<string, Uint8Array>, anchors) -> report (the JSON shape of
// `bwv verify --json`).
export async function verifyBundle(files, anchors) {
  if (!anchors || (!anchors.devicePub && !anchors.dockPub)) {
    throw new Error("no trust anchor: give the device's or the dock's public key");
  }
  return {
    ok: false,
    trusted: "nothing (stub verifier)",
    findings: [{ kind: "unchecked", detail: "the verifier core is not built yet" }],
    recordings: [],
    segments: [],
  };
}
