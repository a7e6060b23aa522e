// Follows a PENDING order: one server-sent event per status change (from the saga's Redis status
// feed); on each, the page's order section is read again and swapped in place, never reloaded.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) { return; }
  const source = new EventSource(live.dataset.url);
  source.addEventListener("status", async function (event) {
    const change = JSON.parse(event.data);
    if (change.terminal) { source.close(); }
    const reply = await fetch(window.location.href, { headers: { "Accept": "text/html" } });
    const fresh = new DOMParser().parseFromString(await reply.text(), "text/html").getElementById("order");
    if (fresh) {
      document.getElementById("order").replaceWith(fresh);
      document.body.dataset.liveUpdates = String(Number(document.body.dataset.liveUpdates || 0) + 1);
    }
  });
})();
