/*
 * pcsms charts: a small wrapper over the vendored Chart.js that draws in the admin's colours and
 * follows its light and dark themes. Load static/vendor/chartjs/chart.umd.js before this file.
 *
 *   pcsmsCharts.bar(canvas, labels, datasets, options)  -> Chart   bars, one per label
 *   pcsmsCharts.line(canvas, datasets, options)         -> Chart   lines through {x, y} points
 *   pcsmsCharts.update(chart, labels, datasets)         -> Chart   new figures (labels: null for
 *                                                                  a line chart); no animation
 *   pcsmsCharts.theme()                                 -> {dark, fg, quiet, grid, border, bg}
 *
 * canvas: a <canvas> element or its id; give its parent a height (Chart.js fills the parent).
 * labels: the x axis of a bar chart, strings.
 * datasets: [{label, data, color, dashed, points}], only label and data required:
 *   data: numbers, one per label (bar), or [{x, y}] with x a number (line);
 *   color: an admin CSS variable ("--link-fg", "--error-fg"), any CSS colour, or an index into
 *          the palette (0: --link-fg, then green, orange, --error-fg, grey, purple, ochre, pink,
 *          each lighter in the dark theme); default: the dataset's place in the list;
 *   dashed: a dashed line; points: show a line's points (default true).
 * options (all optional): {stacked: bars stacked, xTitle, yTitle: axis titles,
 *   xTick: fn(value) -> string for a line chart's x labels, legend: show it (default: more than
 *   one dataset)}.
 *
 * Colours are read from the admin's CSS variables (--body-fg, --body-quiet-color,
 * --hairline-color, ...) when a chart is drawn and again whenever the theme changes (the theme
 * toggle's html[data-theme], or the system's prefers-color-scheme), so every chart made here
 * re-colours itself. The Chart instance is Chart.getChart(canvas), as Chart.js keeps it.
 * window.pcsmsCharts is undefined when Chart.js did not load: keep the figures in the page too.
 *
 * Example (both scripts with defer, before the page's own; the canvas's parent has a height):
 *   const chart = pcsmsCharts.bar("texts-per-hour", ["09:00", "10:00"],
 *                                 [{ label: "Texts", data: [120, 80] }], { yTitle: "texts" });
 *   pcsmsCharts.update(chart, labels, [{ label: "Texts", data: counts }]);   // on each refresh
 */
(function () {
  "use strict";
  if (typeof window.Chart !== "function") return; // no Chart.js: pages keep their tables

  // Okabe-Ito-like colours that keep apart for colour-blind readers, each theme its own.
  const PALETTE = {
    light: [
      "--link-fg", "#2e7d32", "#d98200", "--error-fg", "#7a7a7a", "#7b4fa8", "#9e7c00", "#c2185b",
    ],
    dark: [
      "--link-fg", "#66bb6a", "#f0b840", "--error-fg", "#b0b0b0", "#b39ddb", "#e6d35a", "#f48fb1",
    ],
  };
  const charts = new Set();

  function cssVar(name, fallback) {
    const value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function isDark(color) {
    // The admin's --body-bg as rgb (a canvas parses any CSS colour); dark below half luminance.
    const ctx = document.createElement("canvas").getContext("2d");
    ctx.fillStyle = color;
    const hex = ctx.fillStyle; // "#rrggbb" or "rgba(...)"
    const rgb = hex.startsWith("#")
      ? [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16))
      : (hex.match(/\d+(\.\d+)?/g) || [255, 255, 255]).slice(0, 3).map(Number);
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2] < 128;
  }

  function theme() {
    const bg = cssVar("--body-bg", "#fff");
    return {
      dark: isDark(bg),
      fg: cssVar("--body-fg", "#333"),
      quiet: cssVar("--body-quiet-color", "#666"),
      grid: cssVar("--hairline-color", "#e8e8e8"),
      border: cssVar("--border-color", "#ccc"),
      bg: bg,
    };
  }

  function resolve(color, index, t) {
    const palette = PALETTE[t.dark ? "dark" : "light"];
    let value = color === undefined || color === null ? index : color;
    if (typeof value === "number") {
      value = palette[((value % palette.length) + palette.length) % palette.length];
    }
    return value.startsWith("--") ? cssVar(value, t.fg) : value;
  }

  function styled(kind, source, index, t) {
    const color = resolve(source.color, index, t);
    const set = {
      label: source.label,
      data: source.data,
      backgroundColor: color,
      borderColor: color,
    };
    if (kind === "line") {
      set.borderWidth = 2;
      set.borderDash = source.dashed ? [6, 4] : [];
      set.pointRadius = source.points === false ? 0 : 2;
      set.tension = 0;
    }
    return set;
  }

  function options(kind, opts, count, t) {
    const axis = (title) => ({
      ticks: { color: t.quiet },
      grid: { color: t.grid },
      border: { color: t.border },
      title: { display: Boolean(title), text: title || "", color: t.quiet },
    });
    const x = axis(opts.xTitle);
    const y = axis(opts.yTitle);
    y.beginAtZero = true;
    y.ticks.precision = 0;
    if (kind === "bar") {
      x.stacked = y.stacked = Boolean(opts.stacked);
      x.grid.display = false;
      x.ticks.autoSkipPadding = 12;
      x.ticks.maxRotation = 0;
    } else {
      x.type = "linear";
      if (opts.xTick) x.ticks.callback = (value) => opts.xTick(value);
    }
    return {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      color: t.fg,
      borderColor: t.grid,
      interaction: { mode: kind === "bar" ? "index" : "nearest", intersect: false },
      plugins: {
        legend: {
          display: opts.legend === undefined ? count > 1 : Boolean(opts.legend),
          labels: { color: t.fg, boxWidth: 12 },
        },
        tooltip: opts.xTick && kind === "line"
          ? { callbacks: { title: (items) => (items.length ? opts.xTick(items[0].parsed.x) : "") } }
          : {},
      },
      scales: { x: x, y: y },
    };
  }

  function make(kind, canvas, labels, datasets, opts) {
    const element = typeof canvas === "string" ? document.getElementById(canvas) : canvas;
    const t = theme();
    opts = opts || {};
    const chart = new window.Chart(element, {
      type: kind,
      data: {
        labels: labels || undefined,
        datasets: datasets.map((d, i) => styled(kind, d, i, t)),
      },
      options: options(kind, opts, datasets.length, t),
    });
    chart.$pcsms = { kind: kind, opts: opts, sources: datasets };
    charts.add(chart);
    return chart;
  }

  function bar(canvas, labels, datasets, opts) {
    return make("bar", canvas, labels, datasets, opts);
  }

  function line(canvas, datasets, opts) {
    return make("line", canvas, null, datasets, opts);
  }

  function update(chart, labels, datasets) {
    const spec = chart.$pcsms;
    const t = theme();
    const hidden = {}; // a series the reader switched off in the legend stays off
    chart.data.datasets.forEach((d, i) => {
      hidden[d.label] = !chart.isDatasetVisible(i);
    });
    spec.sources = datasets;
    if (labels) chart.data.labels = labels;
    chart.data.datasets = datasets.map((d, i) =>
      Object.assign(styled(spec.kind, d, i, t), { hidden: Boolean(hidden[d.label]) }),
    );
    chart.options = options(spec.kind, spec.opts, datasets.length, t);
    chart.update("none");
    return chart;
  }

  function recolour() {
    for (const chart of charts) {
      if (!chart.canvas || !chart.canvas.isConnected) {
        charts.delete(chart);
        continue;
      }
      update(chart, null, chart.$pcsms.sources);
    }
  }

  new MutationObserver(recolour).observe(document.documentElement, {
    attributes: true,
    attributeFilter: ["data-theme"],
  });
  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", recolour);
  }

  window.pcsmsCharts = { bar: bar, line: line, update: update, theme: theme };
})();
