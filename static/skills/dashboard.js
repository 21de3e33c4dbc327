// The dashboard of a skill or a campaign: its figures again every few seconds (the server's
// JSON, skills.selectors.Dashboard.as_json), the chart of texts per minute redrawn. The server
// says when to ask next (longer for a list whose figures take long to count).
(function () {
  "use strict";
  const root = document.querySelector(".dashboard[data-url]");
  if (!root) return;
  const fmt = new Intl.NumberFormat();
  const el = (name) => root.querySelector(`[data-d="${name}"]`);
  const SVG = "http://www.w3.org/2000/svg";

  function rows(body, pairs) {
    body.replaceChildren();
    if (!pairs.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 2;
      cell.textContent = "None yet";
      return;
    }
    for (const [label, count] of pairs) {
      const row = body.insertRow();
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = label;
      row.appendChild(head);
      row.insertCell().textContent = fmt.format(count);
    }
  }

  function chart(perMinute) {
    const svg = el("chart");
    const peak = Math.max(1, ...perMinute);
    svg.replaceChildren();
    perMinute.forEach((count, i) => {
      const height = Math.round((100 * count) / peak);
      const bar = document.createElementNS(SVG, "rect");
      bar.setAttribute("x", String(10 * i));
      bar.setAttribute("y", String(100 - height));
      bar.setAttribute("width", "8");
      bar.setAttribute("height", String(height));
      const title = document.createElementNS(SVG, "title");
      title.textContent = String(count);
      bar.appendChild(title);
      svg.appendChild(bar);
    });
    el("peak").textContent = fmt.format(peak);
  }

  // The forecast made at the start beside what happened (skills.selectors.ForecastCheck).
  function forecast(f) {
    const summary = el("forecast_summary");
    if (!summary) return;
    summary.textContent = f
      ? f.summary
      : "No forecast of this run: one is made when the skill starts.";
  }

  function show(data) {
    el("states").textContent = data.states.join("; ");
    el("at").textContent = data.at;
    for (const name of ["records", "finalized", "waiting", "opted_out"]) {
      el(name).textContent = fmt.format(data[name]);
    }
    el("percent_done").textContent = data.percent_done;
    el("progress").value = data.percent_done;
    el("rate").textContent = data.rate;
    el("eta").textContent = data.eta_text;
    rows(el("outcomes"), data.outcomes);
    rows(el("texts"), data.texts);
    chart(data.per_minute);
    forecast(data.forecast);
  }

  async function poll() {
    let wait = 5;
    try {
      const response = await fetch(root.dataset.url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      if (response.ok) {
        const data = await response.json();
        show(data);
        wait = data.next_seconds || wait;
        el("next_seconds").textContent = wait;
      }
    } catch (err) {
      // the server did not answer: the figures stay as they were until the next try
    }
    setTimeout(poll, wait * 1000);
  }
  setTimeout(poll, 5000);
})();
