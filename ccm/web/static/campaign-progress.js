// The campaign progress page, kept live from the server's event stream (ccm/web/campaigns.py
// "events"): each "progress" event carries the campaign as GET /v1/campaigns/{id} shows it.
(function () {
  "use strict";
  var ENDED = ["completed", "cancelled"];

  function put(root, name, value) {
    root.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = value; });
  }

  function timeLeft(seconds) {
    if (seconds === null || seconds === undefined) { return "unknown"; }
    if (seconds < 120) { return Math.round(seconds) + " s"; }
    if (seconds < 7200) { return Math.round(seconds / 60) + " min"; }
    return Math.round(seconds / 3600) + " h";
  }

  function reasons(root, byReason) {
    var body = root.querySelector('[data-list="skipped_by_reason"]');
    if (!body) { return; }
    body.replaceChildren();
    Object.keys(byReason).sort().forEach(function (reason) {
      var row = document.createElement("tr");
      var name = document.createElement("th");
      var count = document.createElement("td");
      name.scope = "row";
      name.textContent = reason;
      count.textContent = byReason[reason];
      row.append(name, count);
      body.append(row);
    });
  }

  function show(root, campaign) {
    var percent = Math.floor(campaign.progress);
    root.querySelector("progress").value = campaign.progress;
    root.querySelector("progress").textContent = percent + " %";
    put(root, "progress", percent + " %");
    put(document, "status", campaign.status);
    put(root, "rate", campaign.rate + " messages/s");
    put(root, "eta", timeLeft(campaign.eta_seconds));
    Object.keys(campaign.counts).forEach(function (name) { put(root, "count-" + name, campaign.counts[name]); });
    reasons(root, campaign.skipped_by_reason);
  }

  // The A/B test's section is the server's to word (ccm/web/campaign_ab.py): when the test moves
  // on (the sample written, a winner chosen, the rest sent), the page is loaded again.
  function abMoved(campaign) {
    var ab = document.querySelector("[data-ab-phase]");
    if (!ab || !campaign.ab_test) { return false; }
    return ab.dataset.abPhase !== campaign.fanout_phase || ab.dataset.abStatus !== campaign.status ||
      ab.dataset.abWinner !== (campaign.ab_test.winner || "");
  }

  function ended(root, status) {
    put(root, "done", "The campaign is " + status + ".");
    document.querySelectorAll("[data-while-live]").forEach(function (el) { el.hidden = true; });
  }

  function watch(root) {
    var source = new EventSource(root.dataset.progressEvents);
    source.addEventListener("progress", function (event) {
      var campaign = JSON.parse(event.data);
      if (abMoved(campaign)) { source.close(); window.location.reload(); return; }
      show(root, campaign);
    });
    source.addEventListener("end", function (event) {
      var status = JSON.parse(event.data).status;
      source.close();
      if (ENDED.indexOf(status) >= 0) { ended(root, status); } else { watch(root); }  // the stream timed out
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-progress-events]");
    if (root && window.EventSource) { watch(root); }
  });
})();
