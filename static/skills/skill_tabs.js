// The skill page's parameter pages as tabs (docs/spec.md section 7). The server lists each tab's
// sections (SkillAdmin.render_change_form); without this script they all show in a column.
// A tab holding an error is marked and opened first; otherwise the tab last used for this
// skill opens again (after "Save and continue editing", say).
(function () {
  "use strict";
  const config = document.getElementById("skill-tabs");
  if (!config) return;
  const form = config.closest("form");
  const tabs = JSON.parse(config.textContent)
    .map((tab) => ({
      ...tab,
      elements: tab.selectors.flatMap((selector) => Array.from(form.querySelectorAll(selector))),
    }))
    .filter((tab) => tab.elements.length);
  if (tabs.length < 2) return;

  const bar = document.createElement("div");
  bar.className = "skill-tabs";
  bar.setAttribute("role", "tablist");
  const first = tabs[0].elements[0];
  first.parentNode.insertBefore(bar, first);

  const storageKey = `pcsms-skill-tab:${window.location.pathname}`;
  const buttons = new Map();

  function show(key) {
    for (const tab of tabs) {
      const selected = tab.key === key;
      for (const element of tab.elements) element.classList.toggle("skill-tab-hidden", !selected);
      buttons.get(tab.key).setAttribute("aria-selected", selected ? "true" : "false");
    }
    try {
      window.sessionStorage.setItem(storageKey, key);
    } catch (err) {
      // storage refused (private mode): the first tab opens next time
    }
  }

  let withErrors = null;
  for (const tab of tabs) {
    const button = document.createElement("button");
    button.type = "button";
    button.setAttribute("role", "tab");
    button.dataset.tab = tab.key;
    button.textContent = tab.title;
    if (tab.elements.some((element) => element.querySelector(".errorlist li, .errors"))) {
      button.classList.add("has-errors");
      button.title = "This page has errors";
      withErrors = withErrors || tab.key;
    }
    button.addEventListener("click", () => show(tab.key));
    buttons.set(tab.key, button);
    bar.appendChild(button);
  }

  let remembered = null;
  try {
    remembered = window.sessionStorage.getItem(storageKey);
  } catch (err) {
    remembered = null;
  }
  const known = (key) => tabs.some((tab) => tab.key === key);
  show(withErrors || (known(remembered) ? remembered : tabs[0].key));
})();
