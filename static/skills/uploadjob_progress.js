// Upload job page: polls the job's progress (JSON) every second while it is queued or running,
// updates the bar and counts, and reloads the page once when the job ends.
(function () {
  "use strict";
  const panel = document.getElementById("upload-progress");
  if (!panel) return;
  const active = ["queued", "running"];
  if (!active.includes(panel.dataset.status)) return;

  const text = document.getElementById("upload-status-text");
  const counts = document.getElementById("upload-counts");
  const bar = document.getElementById("upload-bar");
  const message = document.getElementById("upload-message");
  const cancel = document.getElementById("upload-cancel");
  const fmt = new Intl.NumberFormat();

  async function poll() {
    let data;
    try {
      const response = await fetch(panel.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (!response.ok) throw new Error(response.statusText);
      data = await response.json();
    } catch (err) {
      setTimeout(poll, 3000); // a hiccup of the server: try again a little later
      return;
    }
    text.textContent = data.status_display;
    counts.textContent =
      `${fmt.format(data.rows_processed)} of ${fmt.format(data.rows_total)} rows: ` +
      `${fmt.format(data.rows_valid)} valid, ${fmt.format(data.rows_invalid)} invalid, ` +
      `${fmt.format(data.rows_flagged)} with warnings`;
    bar.value = data.percent;
    if (data.message) {
      message.textContent = data.message;
      message.hidden = false;
    }
    if (cancel && data.cancel_requested) {
      cancel.disabled = true;
      cancel.textContent = "Cancelling...";
    }
    if (data.finished) {
      window.location.reload();
      return;
    }
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
