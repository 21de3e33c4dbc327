/*
 * Live check and merged preview for the message template page (pcsms admin).
 *
 * Counting happens here, on every keystroke, with the tables of messaging/segments.py delivered in
 * the page (json_script "template-editor-config"): analyse() below is a line-for-line port of
 * segments.analyse() and tests/browser/test_template_page.py compares the two on many strings.
 * Everything that needs the template parser or the database goes to the JSON endpoints of the
 * MessageTemplate admin, so there is one parser: syntax problems (validate), the variables list
 * and calling lists (variables), records to preview with (records) and the merged text (preview).
 */
(function () {
  "use strict";

  // --- Segment accounting: a port of messaging/segments.py ------------------------------------

  function makeTables(encoding) {
    const basic = new Set(Array.from(encoding.basic));
    const extension = new Set(Array.from(encoding.extension));
    return {
      basic: basic,
      extension: extension,
      isGsmChar: function (char) {
        return basic.has(char) || extension.has(char);
      },
      gsmSingle: encoding.gsmSingle,
      gsmMulti: encoding.gsmMulti,
      ucs2Single: encoding.ucs2Single,
      ucs2Multi: encoding.ucs2Multi,
    };
  }

  // [parts, units in the last part] when indivisible items of 1 or 2 units fill parts in order:
  // an escape pair or surrogate pair never straddles two parts.
  function split(weights, capacity) {
    let parts = 1;
    let used = 0;
    for (const weight of weights) {
      if (used + weight > capacity) {
        parts += 1;
        used = 0;
      }
      used += weight;
    }
    return [parts, used];
  }

  function result(encoding, characters, units, segments, culprits, perSegment, remaining) {
    return {
      encoding: encoding,
      characters: characters,
      units: units,
      segments: segments,
      culprits: culprits,
      per_segment: perSegment,
      remaining: remaining,
    };
  }

  // Field names match segments.SegmentInfo so results compare directly with analyse() there.
  function analyse(text, t) {
    const chars = Array.from(text); // code points, like a Python str
    const characters = chars.length;
    if (chars.every(t.isGsmChar)) {
      let extension = 0;
      for (const char of chars) {
        if (t.extension.has(char)) extension += 1;
      }
      const units = characters + extension;
      if (units <= t.gsmSingle) {
        return result("GSM-7", characters, units, units ? 1 : 0, [], t.gsmSingle, t.gsmSingle - units);
      }
      let segments;
      let last;
      if (extension) {
        [segments, last] = split(
          chars.map((char) => (t.extension.has(char) ? 2 : 1)),
          t.gsmMulti,
        );
      } else {
        segments = Math.ceil(units / t.gsmMulti);
        last = ((units - 1) % t.gsmMulti) + 1;
      }
      return result("GSM-7", characters, units, segments, [], t.gsmMulti, t.gsmMulti - last);
    }

    const culprits = [];
    const seen = new Set();
    for (const char of chars) {
      if (seen.has(char)) continue;
      seen.add(char);
      if (!t.isGsmChar(char)) culprits.push(char);
    }
    const units = text.length; // UTF-16 code units: an emoji is 2
    if (units <= t.ucs2Single) {
      return result("UCS-2", characters, units, 1, culprits, t.ucs2Single, t.ucs2Single - units);
    }
    let segments;
    let last;
    if (units !== characters) {
      [segments, last] = split(
        chars.map((char) => (char.codePointAt(0) > 0xffff ? 2 : 1)),
        t.ucs2Multi,
      );
    } else {
      segments = Math.ceil(units / t.ucs2Multi);
      last = ((units - 1) % t.ucs2Multi) + 1;
    }
    return result("UCS-2", characters, units, segments, culprits, t.ucs2Multi, t.ucs2Multi - last);
  }

  // segments.gsm_lookalikes(): characters without a look-alike stay as they are.
  function replaceLookalikes(text, lookalikes) {
    return Array.from(text)
      .map((char) => (Object.hasOwn(lookalikes, char) ? lookalikes[char] : char))
      .join("");
  }

  // The server counts positions in code points, the textarea in UTF-16 units.
  function toUtf16Index(text, codePointIndex) {
    return Array.from(text).slice(0, codePointIndex).join("").length;
  }

  window.pcsmsTemplateEditor = {
    makeTables: makeTables,
    analyse: analyse,
    replaceLookalikes: replaceLookalikes,
  };

  // --- The page ----------------------------------------------------------------------------

  function debounce(fn, wait) {
    let timer = null;
    return function () {
      clearTimeout(timer);
      timer = setTimeout(fn, wait);
    };
  }

  function plural(n, one, many) {
    return n.toLocaleString() + " " + (n === 1 ? one : many);
  }

  function codeOf(char) {
    return "U+" + char.codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
  }

  // Spaces, controls and invisible characters are shown by their code, not as themselves.
  function isInvisible(char) {
    return /^[\s\u0000-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202f\u2060\ufeff]$/u.test(char);
  }

  function describeReplacement(text) {
    if (text === "") return "(removed)";
    if (text === " ") return "space";
    if (text === "\n") return "line break";
    return text;
  }

  function init() {
    const configElement = document.getElementById("template-editor-config");
    const body = document.getElementById("id_body");
    const live = document.getElementById("te-live");
    const panel = document.getElementById("te-panel");
    if (!configElement || !body || body.tagName !== "TEXTAREA" || !live || !panel) return;

    const config = JSON.parse(configElement.textContent);
    const tables = makeTables(config.encoding);
    const form = body.form;
    const csrfInput = form && form.querySelector("input[name=csrfmiddlewaretoken]");
    const buSelect = document.getElementById("id_business_unit");

    const $ = (root, name) => root.querySelector('[data-te="' + name + '"]');
    const el = {
      encoding: $(live, "encoding"),
      characters: $(live, "characters"),
      units: $(live, "units"),
      unitsLabel: $(live, "units-label"),
      segments: $(live, "segments"),
      segmentsLabel: $(live, "segments-label"),
      remaining: $(live, "remaining"),
      tooLong: $(live, "too-long"),
      culpritsBox: $(live, "culprits-box"),
      culpritsIntro: $(live, "culprits-intro"),
      culprits: $(live, "culprits"),
      replace: $(live, "replace"),
      replaceNote: $(live, "replace-note"),
      problems: $(live, "problems"),
      problemsOk: $(live, "problems-ok"),
      problemsError: $(live, "problems-error"),
      variables: $(panel, "variables"),
      recordRow: $(panel, "record-row"),
      list: $(panel, "list"),
      search: $(panel, "search"),
      record: $(panel, "record"),
      recordNote: $(panel, "record-note"),
      valuesRow: $(panel, "values-row"),
      values: $(panel, "values"),
      valuesHelp: $(panel, "values-help"),
      merged: $(panel, "merged"),
      mergedStats: $(panel, "merged-stats"),
      mergedNote: $(panel, "merged-note"),
    };

    // Under the textarea (before its help text), and the panel right after the body's fieldset.
    const bodyBox = body.closest(".flex-container") || body;
    bodyBox.after(live);
    (body.closest("fieldset") || form).after(panel);
    live.hidden = false;
    panel.hidden = false;

    function businessUnit() {
      if (config.businessUnit) return config.businessUnit;
      return buSelect && buSelect.value ? buSelect.value : null;
    }

    // Only the newest answer of each kind is shown; older ones still in flight are dropped.
    const latest = {};
    async function request(kind, url, payload) {
      const ticket = (latest[kind] = (latest[kind] || 0) + 1);
      const options = { credentials: "same-origin", headers: { Accept: "application/json" } };
      if (payload !== undefined) {
        options.method = "POST";
        options.headers["Content-Type"] = "application/json";
        options.headers["X-CSRFToken"] = csrfInput ? csrfInput.value : "";
        options.body = JSON.stringify(payload);
      }
      const response = await fetch(url, options);
      if (ticket !== latest[kind]) return null;
      if (!response.ok) throw new Error("the server answered " + response.status);
      const data = await response.json();
      return ticket === latest[kind] ? data : null;
    }

    function query(url, params) {
      const search = new URLSearchParams();
      for (const [key, value] of Object.entries(params)) {
        if (value !== null && value !== undefined && value !== "") search.set(key, value);
      }
      const text = search.toString();
      return text ? url + "?" + text : url;
    }

    // --- Counter and culprits --------------------------------------------------------------

    function renderStats(target, info) {
      target.encoding.textContent = info.encoding;
      target.encoding.classList.toggle("te-ucs2", info.encoding === "UCS-2");
      target.characters.textContent = info.characters.toLocaleString();
      target.units.textContent = info.units.toLocaleString();
      target.unitsLabel.textContent =
        info.encoding === "GSM-7" ? "septets" : info.units === 1 ? "UTF-16 unit" : "UTF-16 units";
      target.segments.textContent = info.segments.toLocaleString();
      target.segmentsLabel.textContent = info.segments === 1 ? "segment" : "segments";
      target.remaining.textContent = info.remaining.toLocaleString();
    }

    function culpritChip(char) {
      const chip = document.createElement("span");
      chip.className = "te-char";
      const shown = document.createElement("span");
      shown.className = "te-glyph";
      shown.textContent = isInvisible(char) ? codeOf(char) : char;
      chip.append(shown);
      const has = Object.hasOwn(config.lookalikes, char);
      if (has) {
        const to = document.createElement("span");
        to.className = "te-to";
        const replacement = config.lookalikes[char];
        to.textContent = "\u2192 " + describeReplacement(replacement);
        chip.append(to);
      } else {
        chip.classList.add("te-stuck");
      }
      chip.title = codeOf(char) + (has ? "" : ": no GSM look-alike");
      return chip;
    }

    function updateStats() {
      const text = body.value;
      const info = analyse(text, tables);
      renderStats(el, info);
      const over = info.characters - config.maxLength;
      el.tooLong.hidden = over <= 0;
      el.tooLong.textContent =
        over > 0 ? plural(over, "character", "characters") + " over the " +
          config.maxLength.toLocaleString() + " limit" : "";

      el.culpritsBox.hidden = info.culprits.length === 0 || (channel && channel.value !== "sms");
      if (info.culprits.length) {
        el.culpritsIntro.textContent =
          "Sent as UCS-2 (" + tables.ucs2Single + " characters per segment instead of " +
          tables.gsmSingle + ") because of:";
        el.culprits.replaceChildren(...info.culprits.map(culpritChip));
        const fixable = info.culprits.filter((c) => Object.hasOwn(config.lookalikes, c));
        const stuck = info.culprits.filter((c) => !Object.hasOwn(config.lookalikes, c));
        el.replace.disabled = fixable.length === 0;
        el.replaceNote.textContent = stuck.length
          ? "No GSM look-alike for " + stuck.map((c) => (isInvisible(c) ? codeOf(c) : c)).join(" ") +
            ": remove " + (stuck.length === 1 ? "it" : "them") + " to send as GSM-7."
          : "";
      }
      return info;
    }

    // --- Editing the body (undoable: execCommand keeps the textarea's undo history) -------------

    let selection = { start: body.selectionStart, end: body.selectionEnd };
    function rememberSelection() {
      selection = { start: body.selectionStart, end: body.selectionEnd };
    }
    ["keyup", "mouseup", "select", "input", "blur"].forEach((event) =>
      body.addEventListener(event, rememberSelection),
    );

    function insertText(text) {
      let inserted = false;
      try {
        inserted = document.execCommand("insertText", false, text);
      } catch (error) {
        inserted = false;
      }
      if (!inserted) {
        body.setRangeText(text, body.selectionStart, body.selectionEnd, "end");
        body.dispatchEvent(new Event("input", { bubbles: true }));
      }
    }

    function insertAtCursor(snippet) {
      body.focus();
      body.setSelectionRange(selection.start, selection.end);
      insertText(snippet);
      rememberSelection();
    }

    el.replace.addEventListener("click", function () {
      const before = body.value;
      const after = replaceLookalikes(before, config.lookalikes);
      if (after === before) return;
      const cursor = replaceLookalikes(before.slice(0, selection.end), config.lookalikes).length;
      body.focus();
      body.select();
      insertText(after);
      if (body.value !== after) {
        body.value = after;
        body.dispatchEvent(new Event("input", { bubbles: true }));
      }
      body.setSelectionRange(cursor, cursor);
      rememberSelection();
    });

    // --- Syntax problems (the server's validate(), the same check as saving) ----------------

    function renderProblems(problems) {
      el.problemsError.hidden = true;
      el.problems.hidden = problems.length === 0;
      el.problemsOk.hidden = problems.length !== 0;
      body.classList.toggle("te-invalid", problems.length !== 0);
      el.problems.replaceChildren(
        ...problems.map(function (problem) {
          const item = document.createElement("li");
          if (problem.position === null || problem.position === undefined) {
            item.textContent = problem.message;
            return item;
          }
          const link = document.createElement("a");
          link.href = "#id_body";
          link.textContent = problem.message;
          link.title = "Show the place in the text";
          link.addEventListener("click", function (event) {
            event.preventDefault();
            const start = toUtf16Index(body.value, problem.position);
            const end = toUtf16Index(body.value, problem.position + 1);
            body.focus();
            body.setSelectionRange(start, end);
            rememberSelection();
          });
          item.append(link);
          return item;
        }),
      );
    }

    async function validate() {
      try {
        const data = await request("validate", config.urls.validate, {
          business_unit: businessUnit(),
          body: body.value,
        });
        if (data) renderProblems(data.problems);
      } catch (error) {
        el.problemsError.hidden = false;
        el.problemsError.textContent = "Could not check the syntax: " + error.message + ".";
      }
    }
    const scheduleValidate = debounce(validate, 250);

    // --- Variables and calling lists --------------------------------------------------------

    function renderVariables(variables) {
      el.variables.replaceChildren(
        ...variables.map(function (variable) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "te-var te-var-" + variable.kind;
          button.textContent = "{" + variable.name + "}";
          button.dataset.name = variable.name;
          button.title =
            variable.kind === "system"
              ? "System field: click to insert"
              : "Custom field (" + variable.type + ")" +
                (variable.lists.length ? " of " + variable.lists.join(", ") : "") +
                ": click to insert";
          button.addEventListener("click", () => insertAtCursor("{" + variable.name + "}"));
          return button;
        }),
      );
    }

    function renderLists(lists) {
      const previous = el.list.value;
      el.list.replaceChildren(
        ...lists.map(function (item) {
          const option = document.createElement("option");
          option.value = item.id;
          option.textContent = item.name;
          return option;
        }),
      );
      if (lists.some((item) => String(item.id) === previous)) el.list.value = previous;
      const none = lists.length === 0;
      el.list.disabled = el.search.disabled = el.record.disabled = none;
      el.recordNote.textContent = none
        ? "This business unit has no calling lists yet: preview with sample values."
        : "";
    }

    async function loadVariables() {
      try {
        const data = await request(
          "variables",
          query(config.urls.variables, { business_unit: businessUnit() }),
        );
        if (!data) return;
        renderVariables(data.variables);
        renderLists(data.lists);
        if (source() === "record") await loadRecords();
      } catch (error) {
        el.variables.textContent = "Could not load the variables: " + error.message + ".";
      }
    }

    async function loadRecords() {
      if (!el.list.value) {
        el.record.replaceChildren();
        schedulePreview();
        return;
      }
      try {
        const data = await request(
          "records",
          query(config.urls.records, {
            business_unit: businessUnit(),
            calling_list: el.list.value,
            q: el.search.value.trim(),
          }),
        );
        if (!data) return;
        const previous = el.record.value;
        el.record.replaceChildren(
          ...data.records.map(function (record) {
            const option = document.createElement("option");
            option.value = record.id;
            option.textContent = record.label;
            return option;
          }),
        );
        if (data.records.some((record) => String(record.id) === previous)) {
          el.record.value = previous;
        }
        el.recordNote.textContent = data.records.length
          ? data.more
            ? "Showing the first " + data.records.length + " matches: type to narrow them down."
            : ""
          : "No record of this list matches.";
        preview();
      } catch (error) {
        el.recordNote.textContent = "Could not load records: " + error.message + ".";
      }
    }

    // --- Merged preview ---------------------------------------------------------------------

    const overrides = new Map(); // lowercase variable name -> [name, value typed by the user]
    const valueRows = new Map(); // lowercase variable name -> row element

    function source() {
      const checked = panel.querySelector('[data-te="source"]:checked');
      return checked ? checked.value : "sample";
    }

    function renderValues(variables, editable) {
      const wanted = variables.map((v) => v.name.toLowerCase());
      for (const [key, row] of valueRows) {
        if (!wanted.includes(key)) {
          row.remove();
          valueRows.delete(key);
        }
      }
      for (const variable of variables) {
        const key = variable.name.toLowerCase();
        let row = valueRows.get(key);
        if (!row) {
          row = document.createElement("label");
          row.className = "te-value";
          const name = document.createElement("span");
          name.className = "te-value-name";
          const input = document.createElement("input");
          input.type = "text";
          input.setAttribute("form", "te-detached");
          input.addEventListener("input", function () {
            overrides.set(key, [variable.name, input.value]);
            schedulePreview();
          });
          row.append(name, input);
          valueRows.set(key, row);
        }
        row.querySelector(".te-value-name").textContent = "{" + variable.name + "}";
        const input = row.querySelector("input");
        input.readOnly = !editable;
        input.placeholder = "(empty: fallback)";
        if (document.activeElement !== input) {
          input.value = editable && overrides.has(key) ? overrides.get(key)[1] : variable.value;
        }
      }
      const current = Array.from(el.values.children);
      const ordered = wanted.map((key) => valueRows.get(key));
      if (current.length !== ordered.length || current.some((row, i) => row !== ordered[i])) {
        el.values.replaceChildren(...ordered);
      }
      if (!variables.length) el.values.textContent = "";
      el.valuesRow.hidden = !variables.length;
      el.valuesHelp.textContent = !variables.length
        ? "The text has no variables."
        : editable
          ? "Sample values: edit one to see the text with it; empty it to see the fallback."
          : "The record's values (read-only): an empty one shows the fallback.";
    }

    function clearPreview(note) {
      el.merged.hidden = true;
      el.merged.textContent = "";
      el.merged.classList.add("te-empty");
      el.mergedStats.textContent = "";
      el.mergedNote.textContent = note;
    }

    function renderMerged(data) {
      const info = data.analysis;
      el.merged.hidden = false;
      el.merged.classList.toggle("te-empty", data.text === "");
      el.merged.textContent = data.text === "" ? "(empty message)" : data.text;
      el.mergedStats.replaceChildren();
      const badge = document.createElement("span");
      badge.className = "te-encoding" + (info.encoding === "UCS-2" ? " te-ucs2" : "");
      badge.textContent = info.encoding;
      const figures = document.createElement("span");
      figures.className = "te-stat";
      figures.dataset.te = "merged-figures";
      figures.textContent =
        plural(info.characters, "character", "characters") + " \u00b7 " +
        plural(info.segments, "segment", "segments") + " \u00b7 " +
        info.remaining.toLocaleString() + " left in this segment";
      el.mergedStats.append(badge, figures);
      let note = "Merged with " + data.source + ".";
      if (info.encoding === "UCS-2" && analyse(body.value, tables).encoding === "GSM-7") {
        note += " The values make this text UCS-2: " + info.culprits.join(" ") + ".";
      }
      el.mergedNote.textContent = note;
    }

    async function preview() {
      const mode = source();
      const payload = { business_unit: businessUnit(), body: body.value, source: mode };
      if (mode === "record") {
        if (!el.record.value) {
          clearPreview(el.list.value ? "Choose a record." : "Choose a calling list.");
          renderValues([], false);
          el.valuesHelp.textContent = "";
          return;
        }
        payload.calling_list = el.list.value;
        payload.record = el.record.value;
      } else {
        payload.values = Object.fromEntries(overrides.values());
      }
      try {
        const data = await request("preview", config.urls.preview, payload);
        if (!data) return;
        if (!data.ok) {
          clearPreview("No preview until the syntax is fixed: " + data.error);
          renderValues([], mode === "sample");
          el.valuesHelp.textContent = "";
          return;
        }
        renderMerged(data);
        renderValues(data.variables, mode === "sample");
      } catch (error) {
        clearPreview("Preview unavailable: " + error.message + ".");
        renderValues([], mode === "sample");
        el.valuesHelp.textContent = "";
      }
    }
    const schedulePreview = debounce(preview, 300);

    // --- Wiring -----------------------------------------------------------------------------

    body.addEventListener("input", function () {
      updateStats();
      scheduleValidate();
      schedulePreview();
    });
    panel.querySelectorAll('[data-te="source"]').forEach((radio) =>
      radio.addEventListener("change", function () {
        el.recordRow.hidden = source() !== "record";
        if (source() === "record") loadRecords();
        else preview();
      }),
    );
    el.list.addEventListener("change", function () {
      el.search.value = "";
      loadRecords();
    });
    el.search.addEventListener("input", debounce(loadRecords, 250));
    el.record.addEventListener("change", preview);
    if (buSelect && !config.businessUnit) {
      buSelect.addEventListener("change", function () {
        loadVariables();
        validate();
        preview();
      });
    }

    // The channel: an SMS template shows its segment count and hides the email parts (unless
    // something is typed there, so that the form's error about it stays in sight); an email
    // template shows its subject and HTML part, and no segment count.
    const channel = document.getElementById("id_channel");
    const stats = live.querySelector(".te-stats");
    function showChannel() {
      const sms = !channel || channel.value === "sms";
      stats.hidden = !sms;
      if (!sms) el.culpritsBox.hidden = true;
      for (const name of ["subject", "html_body"]) {
        const input = document.getElementById("id_" + name);
        if (!input) continue;
        const row = input.closest(".form-row") || input.parentElement;
        row.hidden = sms && !input.value;
        const fieldset = row.closest("fieldset");
        if (name === "html_body" && fieldset) fieldset.hidden = row.hidden;
      }
    }
    if (channel) {
      channel.addEventListener("change", function () {
        showChannel();
        if (channel.value === "sms") updateStats();
      });
    }

    el.recordRow.hidden = source() !== "record";
    updateStats();
    showChannel();
    validate();
    loadVariables();
    preview();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
