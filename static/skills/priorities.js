// Relative priorities page: as a priority is changed, the last column shows again what each
// skill's part of its transport code's pace becomes (the same sums as skills/selectors.py).
(function () {
  "use strict";
  const rows = Array.from(document.querySelectorAll(".skill-priorities-table tr[data-code]"));
  if (!rows.length) return;

  function priority(row) {
    const select = row.querySelector("select");
    return Number(select ? select.value : row.dataset.priority);
  }

  function refresh() {
    const running = new Map(); // transport code -> the sum of its running skills' priorities
    for (const row of rows) {
      if (row.dataset.running === "1") {
        running.set(row.dataset.code, (running.get(row.dataset.code) || 0) + priority(row));
      }
    }
    for (const row of rows) {
      const own = priority(row);
      const others = (running.get(row.dataset.code) || 0) - (row.dataset.running === "1" ? own : 0);
      const share = own / (others + own);
      const rate = Number(row.dataset.rate) * share;
      const text = `${Math.round(share * 100)}% = ${Number(rate.toFixed(2))}/s`;
      row.querySelector("[data-share]").textContent =
        row.dataset.running === "1" ? text : `if started: ${text}`;
    }
  }

  for (const row of rows) {
    const select = row.querySelector("select");
    if (select) select.addEventListener("change", refresh);
  }
})();
