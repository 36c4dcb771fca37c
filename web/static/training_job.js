// A training job's page: poll its JSON; redraw the learning curve (inline SVG served by
// the app) after each new epoch; reload when the job stops, to show the report.
(function () {
  "use strict";
  const box = document.getElementById("job-status");
  if (!box) return;
  const stopped = ["succeeded", "failed", "cancelled", "crashed"];
  if (stopped.includes(box.dataset.status)) return;
  let lastEpoch = -1;
  let delay = 1000;

  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const job = await response.json();
        if (stopped.includes(job.status)) { window.location.reload(); return; }
        document.getElementById("status-text").textContent = job.status;
        box.dataset.status = job.status;
        document.getElementById("epoch").textContent = job.epoch;
        document.getElementById("eta").textContent =
          job.eta_seconds === null ? "" : ", about " + Math.round(job.eta_seconds) + " s left";
        if (job.epochs.length !== lastEpoch) {
          lastEpoch = job.epochs.length;
          const svg = await fetch(box.dataset.curve, { cache: "no-store" });
          if (svg.ok) document.getElementById("curve").innerHTML = await svg.text();
          const body = document.querySelector("#epochs tbody");
          body.innerHTML = "";
          for (const e of job.epochs) {
            const row = document.createElement("tr");
            for (const value of [e.epoch, e.train_loss === null ? "" : e.train_loss.toFixed(4),
                                 e.val_mae === null ? "" : e.val_mae.toFixed(2),
                                 e.lr === null ? "" : e.lr.toExponential(2), e.seconds, e.images_per_second]) {
              const cell = document.createElement("td");
              cell.textContent = value;
              row.appendChild(cell);
            }
            body.appendChild(row);
          }
        }
        delay = 1000;
      } else {
        delay = Math.min(delay * 2, 10000);
      }
    } catch (err) {
      delay = Math.min(delay * 2, 10000);
    }
    window.setTimeout(poll, delay);
  }
  window.setTimeout(poll, delay);
})();
