// The log check of an exhibit (filled in below).
export async function checkLog() {
  return { checked: true, included: {} };
}
