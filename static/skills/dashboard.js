// The dashboard of a skill or a campaign: its figures again every few seconds (the server's
// JSON, skills.selectors.Dashboard.as_json), its charts redrawn (static/pcsms/charts.js) and the
// tables under them refilled. The server says when to ask next (longer for a list whose figures
// take long to count). Without Chart.js the tables still show every figure.
(function () {
  "use strict";
  const root = document.querySelector(".dashboard[data-url]");
  // What the skill sends: "texts", "emails" (an email skill) or "messages" (a campaign of both).
  const noun = (root && root.dataset.noun) || "texts";
  const Noun = noun.charAt(0).toUpperCase() + noun.slice(1);
  if (!root) return;
  const fmt = new Intl.NumberFormat();
  const el = (name) => root.querySelector(`[data-d="${name}"]`);
  const charts = window.pcsmsCharts; // undefined when Chart.js did not load
  // An outcome keeps its colour whatever else is on the chart (palette of charts.js).
  const OUTCOME_COLOURS = {
    delivered: 1,
    sent: 0,
    opted_out: 2,
    dnc: 3,
    bad_numbers: 4,
    exhausted: 5,
    expired: 6,
    too_long: 7,
  };
  let drawn = null; // the three charts, once drawn

  function rows(body, pairs) {
    body.replaceChildren();
    if (!pairs.length) {
      const row = body.insertRow();
      const cell = row.insertCell();
      cell.colSpan = 2;
      cell.textContent = "None yet";
      return;
    }
    for (const [label, ...counts] of pairs) {
      const row = body.insertRow();
      const head = document.createElement("th");
      head.scope = "row";
      head.textContent = label;
      row.appendChild(head);
      for (const count of counts) row.insertCell().textContent = fmt.format(count);
    }
  }

  // Minutes from now as a reader says them: "-45 min", "now", "+3 h 20 min", "+2 d 4 h".
  function relative(minutes) {
    const m = Math.round(minutes);
    if (m === 0) return "now";
    const sign = m < 0 ? "-" : "+";
    let rest = Math.abs(m);
    if (rest < 60) return `${sign}${rest} min`;
    const days = Math.floor(rest / 1440);
    const hours = Math.floor((rest % 1440) / 60);
    rest %= 60;
    if (days) return `${sign}${fmt.format(days)} d${hours ? ` ${hours} h` : ""}`;
    return `${sign}${hours} h${rest ? ` ${rest} min` : ""}`;
  }

  function perMinuteSets(data) {
    return [{ label: `${Noun} sent`, data: data.per_minute, color: "--link-fg" }];
  }

  function outcomeSets(data) {
    const series = data.outcomes_over_time ? data.outcomes_over_time.series : [];
    return series.map((s) => ({
      label: s.label,
      data: s.counts,
      color: s.reason in OUTCOME_COLOURS ? OUTCOME_COLOURS[s.reason] : 4,
    }));
  }

  function waitingSets(data) {
    const curve = data.waiting_curve;
    const points = (pairs) => pairs.map(([x, y]) => ({ x: x, y: y }));
    const sets = [
      {
        label: `Waiting (the last hour reckoned from the ${noun} sent)`,
        data: points(curve.history),
        color: 0,
      },
    ];
    if (curve.projection.length) {
      const line = points(curve.projection);
      sets.push({ label: "At the current rate", data: line, color: 0, dashed: true, points: false });
    }
    if (curve.forecast.length) {
      const line = points(curve.forecast);
      sets.push({ label: "Forecast at the start", data: line, color: 2, points: false });
    }
    return sets;
  }

  function draw(data) {
    if (!charts) return;
    const outcomeLabels = data.outcomes_over_time ? data.outcomes_over_time.labels : [];
    if (drawn) {
      charts.update(drawn.perMinute, data.per_minute_labels, perMinuteSets(data));
      charts.update(drawn.outcomes, outcomeLabels, outcomeSets(data));
      charts.update(drawn.waiting, null, waitingSets(data));
      return;
    }
    drawn = {
      perMinute: charts.bar("chart-per-minute", data.per_minute_labels, perMinuteSets(data), {
        yTitle: noun,
      }),
      outcomes: charts.bar("chart-outcomes", outcomeLabels, outcomeSets(data), {
        stacked: true,
        legend: true,
        yTitle: "records",
      }),
      waiting: charts.line("chart-waiting", waitingSets(data), {
        xTick: relative,
        yTitle: "records",
        legend: true,
      }),
    };
    root.classList.add("dashboard-charts-drawn");
  }

  function tables(data) {
    rows(el("per_minute_rows"), data.per_minute.map((n, i) => [data.per_minute_labels[i], n]));
    el("peak").textContent = fmt.format(Math.max(1, ...data.per_minute));
    const table = el("outcome_table");
    const over = data.outcomes_over_time || { labels: [], series: [] };
    const head = table.tHead.rows[0];
    head.replaceChildren();
    for (const text of ["From", ...over.series.map((s) => s.label)]) {
      const cell = document.createElement("th");
      cell.scope = "col";
      cell.textContent = text;
      head.appendChild(cell);
    }
    const body = table.tBodies[0];
    if (over.series.length) {
      rows(body, over.labels.map((label, i) => [label, ...over.series.map((s) => s.counts[i])]));
    } else {
      rows(body, []);
    }
    rows(el("waiting_rows"), data.waiting_curve.history);
    let left;
    if (data.eta_minutes === null) {
      const minutes = data.rate_minutes === 1 ? "minute" : `${data.rate_minutes} minutes`;
      left = `no ${noun} in the last ${minutes} to reckon the time left from`;
    } else if (data.eta_minutes === 0) {
      left = "none left";
    } else {
      left = `at ${data.rate} ${noun} a minute, none left in ${data.eta_text}`;
    }
    el("waiting_note").textContent =
      `${fmt.format(data.waiting)} waiting now; ${left}. ` +
      `The last hour is reckoned back from the ${noun} sent.`;
  }

  // "Why is nothing sending?" (templates/admin/skills/why_panel.html): the JSON's
  // why_headline, why_sending and "why" items [{text, url, holds}].
  function why(data) {
    const section = document.getElementById("why-panel");
    if (!section || !data.why) return;
    section.classList.toggle("why-sending", data.why_sending);
    section.querySelector('[data-why="title"]').textContent = data.why_sending
      ? "Sending"
      : "Why is nothing sending?";
    section.querySelector('[data-why="headline"]').textContent = data.why_headline;
    const list = section.querySelector('[data-why="items"]');
    list.replaceChildren();
    for (const item of data.why) {
      const entry = document.createElement("li");
      entry.className = item.holds ? "why-holds" : "why-fact";
      if (item.url) {
        const link = document.createElement("a");
        link.href = item.url;
        link.textContent = item.text;
        entry.appendChild(link);
      } else {
        entry.textContent = item.text;
      }
      list.appendChild(entry);
    }
    list.hidden = !list.children.length;
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
    el("rate_minutes").textContent = data.rate_minutes;
    el("eta").textContent = data.eta_text;
    rows(el("outcomes"), data.outcomes);
    rows(el("texts"), data.texts);
    tables(data);
    draw(data);
    forecast(data.forecast);
    why(data);
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

  // The page came with its figures (and its tables filled): draw them at once.
  const initial = document.getElementById("dashboard-initial");
  if (initial) draw(JSON.parse(initial.textContent));
  setTimeout(poll, 5000);
})();
