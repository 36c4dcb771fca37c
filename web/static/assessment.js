// Poll the job's JSON until it is finished, then reload to show the result.
(function () {
  "use strict";
  const box = document.getElementById("status");
  if (!box) return;
  const url = box.dataset.url;
  const labels = {
    queued: "Queued: waiting for a worker…",
    running: "Running: the model is reading the radiograph…",
  };
  let delay = 1000;

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const job = await response.json();
        if (job.status === "succeeded" || job.status === "failed") {
          window.location.reload();
          return;
        }
        box.textContent = labels[job.status] || job.status;
        box.dataset.status = job.status;
        delay = 1000;
      } else {
        delay = Math.min(delay * 2, 10000);
      }
    } catch (err) {
      delay = Math.min(delay * 2, 10000);  // server restarting: back off, keep trying
    }
    window.setTimeout(poll, delay);
  }
  window.setTimeout(poll, delay);
})();
