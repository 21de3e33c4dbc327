// The Filter page of a skill: "Count the records that match" sends the filter rows as they
// are in the form (saved or not) and shows how many open records of the skill's lists they
// let through (the server runs the planner's own filter).
(function () {
  "use strict";
  const marker = document.getElementById("skill-filter-preview");
  const group = document.getElementById("filter_conditions-group");
  if (!marker || !group) return;
  const form = marker.closest("form");
  const fmt = new Intl.NumberFormat();

  const box = document.createElement("div");
  box.className = "skill-filter-preview skill-tab-filter-extra";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button";
  button.textContent = "Count the records that match";
  const output = document.createElement("output");
  output.setAttribute("aria-live", "polite");
  box.append(button, " ", output);
  group.after(box);

  button.addEventListener("click", async () => {
    button.disabled = true;
    output.textContent = "Counting...";
    output.classList.remove("errornote");
    try {
      const response = await fetch(marker.dataset.url, {
        method: "POST",
        body: new FormData(form),
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      const data = await response.json();
      if (!response.ok) {
        output.textContent = data.error || `The count failed (${response.status}).`;
        output.classList.add("errornote");
      } else {
        output.textContent = [data.text, ...data.problems].join(" ");
        output.dataset.matching = fmt.format(data.matching);
      }
    } catch (err) {
      output.textContent = "The count failed: the server did not answer.";
      output.classList.add("errornote");
    } finally {
      button.disabled = false;
    }
  });
})();
