/* bwv dock console: the one script (no inline script: the Content-Security-Policy forbids
   it). On the uploads page it asks /uploads.json every second and swaps in the rows the
   server rendered, so the progress bars move. Without it every page still reads. */
(function () {
  "use strict";
  var live = document.getElementById("uploads-live");
  if (!live) {
    return;
  }
  var url = live.getAttribute("data-poll");
  var status = document.getElementById("live-status");
  var stopped = false;

  function say(text) {
    if (status) {
      status.textContent = text;
    }
  }

  function schedule() {
    if (!stopped) {
      window.setTimeout(tick, 1000);
    }
  }

  function tick() {
    if (document.hidden) {
      schedule();
      return;
    }
    fetch(url, {
      credentials: "same-origin",
      cache: "no-store",
      redirect: "manual",
      headers: { "Accept": "application/json", "X-Bwv-Poll": "1" }
    }).then(function (r) {
      if (r.type === "opaqueredirect" || r.status === 401 || r.status === 403) {
        stopped = true;
        say("Signed out: reload the page to sign in again.");
        return null;
      }
      if (!r.ok) {
        throw new Error("HTTP " + r.status);
      }
      return r.json();
    }).then(function (data) {
      if (data) {
        live.innerHTML = data.html; /* rendered and escaped by the server's templates */
        say("Live: updated " + data.as_of + ".");
        live.setAttribute("data-as-of", String(data.as_of_us));
      }
    }).catch(function () {
      say("Cannot reach the console: trying again.");
    }).then(schedule);
  }

  say("Live: updating every second.");
  schedule();
})();
