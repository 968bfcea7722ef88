// The Explorer page of the keen local server: plain JavaScript, no library, no network beyond
// this server. Everything taken from events (names, values) is put in the page as text nodes,
// never as HTML. Keys travel only in the Authorization header; the snippets use $KEEN_* names.
"use strict";

(function () {
  const CONFIG = JSON.parse(document.querySelector('meta[name="keen-explorer"]').content);
  const TARGETED = new Set(["sum", "average", "minimum", "maximum", "median", "percentile",
    "count_unique", "select_unique", "standard_deviation"]);
  const GROUPABLE = new Set(["count", "count_unique", "sum", "average", "minimum", "maximum",
    "median", "percentile", "standard_deviation", "select_unique", "multi_analysis"]);
  const OPERATORS = ["eq", "ne", "lt", "lte", "gt", "gte", "exists", "in", "contains",
    "not_contains", "regex"];
  // Fields of a query the builder edits; anything else in an opened definition is kept as is.
  const EDITED = new Set(["analysis_type", "event_collection", "target_property", "percentile",
    "timeframe", "timezone", "interval", "filters", "group_by", "order_by", "limit", "latest",
    "steps"]);
  const STEP_EDITED = new Set(["event_collection", "actor_property", "optional", "inverted"]);
  const ALL_TIME = { start: "1970-01-01T00:00:00.000Z", end: "2200-01-01T00:00:00.000Z" };
  const PALETTE = ["#2f6fde", "#e4572e", "#17a673", "#f0a202", "#7b4fd6", "#0fa3b1",
    "#d6457f", "#5b6475"];
  const MAX_BARS = 50;
  const MAX_ROWS = 1000;
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const state = { project: CONFIG.projects[0], collections: [], extra: {}, extraSteps: [],
    runs: 0, view: "query" };

  // --- small DOM helpers -------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (value !== undefined && value !== null && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function option(value, label, selected) {
    const node = el("option", { value: value, text: label === undefined ? value : label });
    if (selected) node.selected = true;
    return node;
  }

  function fmt(value) {
    if (typeof value === "number") {
      return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(4)));
    }
    if (value === null || value === undefined) return value === null ? "null" : "";
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  function setStatus(text, kind) {
    const node = $("status");
    node.textContent = text;
    node.className = kind === "error" ? "error" : "";
    node.dataset.state = kind;
  }

  // --- the API --------------------------------------------------------------------------------

  async function api(path, options) {
    const opts = options || {};
    const key = opts.master ? state.project.master_key : state.project.read_key;
    const headers = { Authorization: key };
    const init = { method: opts.method || "GET", headers: headers, credentials: "omit",
      cache: "no-store" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.body);
    }
    const url = opts.root ? path : CONFIG.api + "/projects/" +
      encodeURIComponent(state.project.id) + path;
    const response = await fetch(url, init);
    const text = await response.text();
    let data = text;
    try { data = JSON.parse(text); } catch (_) { /* not JSON: keep the text */ }
    if (!response.ok) {
      const message = data && data.message ? data.message : "HTTP " + response.status;
      const code = data && data.error_code ? " (" + data.error_code + ")" : "";
      throw new Error(message + code);
    }
    return data;
  }

  const segment = (name) => encodeURIComponent(name);

  // --- loading the project --------------------------------------------------------------------

  async function loadProject() {
    state.extra = {};
    state.extraSteps = [];
    state.collections = [];
    $("collection-view").hidden = true;
    $("result").hidden = true;
    showView("query");
    await Promise.all([loadCollections(), loadSavedQueries(), loadDatasets()]);
  }

  async function loadTimezones() {
    try {
      const zones = await api("/timezones", { root: true });
      const list = $("timezones");
      for (const zone of zones) list.append(option(zone.name, zone.utc_offset));
    } catch (_) { /* the list is only a convenience */ }
  }

  async function loadCollections() {
    const list = $("collections");
    let collections;
    try {
      collections = await api("/events");
    } catch (error) {
      list.replaceChildren(el("li", { className: "muted", text: error.message }));
      return;
    }
    state.collections = collections.map((c) => ({ name: c.name, properties: c.properties || {},
      count: null }));
    renderCollectionList();
    fillCollectionSelects();
    await Promise.all(state.collections.map(async (c) => {
      try {
        c.count = (await api("/queries/count",
          { method: "POST", body: { event_collection: c.name, timeframe: ALL_TIME } })).result;
      } catch (_) { c.count = "?"; }
    }));
    renderCollectionList();
    if (state.collections.length) showCollection($("collection").value);
  }

  function renderCollectionList() {
    const list = $("collections");
    if (!state.collections.length) {
      list.replaceChildren(el("li", { className: "muted", text: "No events yet." }));
      return;
    }
    list.replaceChildren(...state.collections.map((c) => {
      const button = el("button", { type: "button", "data-collection": c.name },
        el("span", { text: c.name }),
        el("span", { className: "count", text: c.count === null ? "…" : fmt(c.count) }));
      button.addEventListener("click", () => {
        setAnalysisCollection(c.name);
        showCollection(c.name);
      });
      return el("li", {}, button);
    }));
  }

  async function loadSavedQueries() {
    const list = $("saved-queries");
    try {
      const saved = await api("/queries/saved", { master: true });
      if (!saved.length) {
        list.replaceChildren(el("li", { className: "muted", text: "None saved." }));
        return;
      }
      list.replaceChildren(...saved.map((doc) => {
        const button = el("button", { type: "button", "data-saved-query": doc.query_name },
          el("span", { text: doc.query_name }),
          el("span", { className: "count", text: (doc.query || {}).analysis_type || "" }));
        button.addEventListener("click", () => openSavedQuery(doc));
        return el("li", {}, button);
      }));
    } catch (error) {
      list.replaceChildren(el("li", { className: "muted", text: error.message }));
    }
  }

  async function loadDatasets() {
    const list = $("datasets");
    try {
      const answer = await api("/datasets?limit=100");
      const datasets = answer.datasets || [];
      if (!datasets.length) {
        list.replaceChildren(el("li", { className: "muted", text: "None defined." }));
        return;
      }
      list.replaceChildren(...datasets.map((doc) => {
        const button = el("button", { type: "button", "data-dataset": doc.dataset_name },
          el("span", { text: doc.display_name || doc.dataset_name }),
          el("span", { className: "count", text: (doc.query || {}).analysis_type || "" }));
        button.addEventListener("click", () => openDataset(doc));
        return el("li", {}, button);
      }));
    } catch (error) {
      list.replaceChildren(el("li", { className: "muted", text: error.message }));
    }
  }

  const collectionNamed = (name) => state.collections.find((c) => c.name === name);
  const propertiesOf = (name) => Object.keys((collectionNamed(name) || {}).properties || {});
  const typeOf = (collection, property) =>
    ((collectionNamed(collection) || {}).properties || {})[property];

  // --- the collection view --------------------------------------------------------------------

  async function showCollection(name) {
    const c = collectionNamed(name);
    if (!c) return;
    const token = state.shown = (state.shown || 0) + 1;  // a later click wins over a slow answer
    $("collection-view").hidden = false;
    $("collection-title").textContent = c.count === null ? name : name + " · " + fmt(c.count) +
      " events";
    for (const button of document.querySelectorAll("#collections button")) {
      button.classList.toggle("active", button.dataset.collection === name);
    }
    const rows = Object.entries(c.properties).map(([prop, kind]) =>
      el("tr", {}, el("td", { className: "mono", text: prop }), el("td", { text: kind })));
    $("schema").replaceChildren(el("thead", {}, el("tr", {}, el("th", { text: "property" }),
      el("th", { text: "type" }))), el("tbody", {}, ...rows));
    const box = $("latest-events");
    box.replaceChildren(el("span", { className: "muted", text: "Loading…" }));
    try {
      const answer = await api("/queries/extraction", { method: "POST",
        body: { event_collection: name, timeframe: ALL_TIME, latest: 5 } });
      if (token !== state.shown) return;
      const events = (answer.result || []).slice().reverse();
      box.replaceChildren(el("pre", { id: "latest-json", text: events.length
        ? events.map((e) => JSON.stringify(e, null, 2)).join("\n")
        : "No events." }));
    } catch (error) {
      if (token === state.shown) {
        box.replaceChildren(el("span", { className: "muted", text: error.message }));
      }
    }
  }

  // --- the builder ----------------------------------------------------------------------------

  function fillCollectionSelects() {
    const select = $("collection");
    const current = select.value;
    select.replaceChildren(...state.collections.map((c) => option(c.name, c.name,
      c.name === current)));
    for (const row of document.querySelectorAll("#steps .row")) fillStepRow(row);
    refreshProperties();
  }

  function setAnalysisCollection(name) {
    const select = $("collection");
    if (![...select.options].some((o) => o.value === name)) select.append(option(name));
    select.value = name;
    refreshProperties();
    updateSnippets();
  }

  function refreshProperties() {
    const collection = $("collection").value;
    const props = propertiesOf(collection);
    const analysis = $("analysis").value;
    const target = $("target-property");
    const keepTarget = target.value;
    const numeric = !["count_unique", "select_unique"].includes(analysis);
    const ordered = numeric
      ? props.filter((p) => typeOf(collection, p) === "num")
        .concat(props.filter((p) => typeOf(collection, p) !== "num"))
      : props;
    target.replaceChildren(...ordered.map((p) => option(p, p + " (" + typeOf(collection, p) + ")",
      p === keepTarget)));
    const groupBy = $("group-by");
    const chosen = new Set([...groupBy.selectedOptions].map((o) => o.value));
    groupBy.replaceChildren(...props.map((p) => option(p, p, chosen.has(p))));
    for (const value of chosen) {
      if (!props.includes(value)) groupBy.append(option(value, value, true));
    }
    refreshOrderBy();
    for (const row of document.querySelectorAll("#filters .row")) fillFilterRow(row);
  }

  function refreshOrderBy() {
    const select = $("order-by");
    const current = select.value;
    const groups = [...$("group-by").selectedOptions].map((o) => o.value);
    const choices = groups.length ? ["result", ...groups] : [];
    select.replaceChildren(option("", "none"), ...choices.map((c) => option(c, c, c === current)));
  }

  function addFilterRow(filter) {
    const f = filter || {};
    const row = el("div", { className: "row filter" },
      el("span", { className: "label", text: "where" }),
      el("select", { className: "filter-property", "aria-label": "filter property" }),
      el("select", { className: "filter-operator", "aria-label": "filter operator" },
        ...OPERATORS.map((o) => option(o, o, o === (f.operator || "eq")))),
      el("input", { className: "filter-value", "aria-label": "filter value",
        placeholder: "value", spellcheck: "false" }),
      el("button", { type: "button", className: "ghost remove", text: "×",
        "aria-label": "remove filter" }));
    row.querySelector(".filter-value").value = "property_value" in f
      ? (typeof f.property_value === "string" ? f.property_value : JSON.stringify(f.property_value))
      : "";
    row.dataset.property = f.property_name || "";
    row.querySelector(".remove").addEventListener("click", () => { row.remove(); updateSnippets(); });
    $("filters").append(row);
    fillFilterRow(row);
    return row;
  }

  function fillFilterRow(row) {
    const select = row.querySelector(".filter-property");
    const current = select.value || row.dataset.property;
    const props = propertiesOf($("collection").value);
    select.replaceChildren(...props.map((p) => option(p, p, p === current)));
    if (current && !props.includes(current)) select.append(option(current, current, true));
  }

  function addStepRow(step) {
    const s = step || {};
    const row = el("div", { className: "row step" },
      el("span", { className: "label", text: "step" }),
      el("select", { className: "step-collection", "aria-label": "step collection" }),
      el("select", { className: "step-actor", "aria-label": "actor property" }),
      el("label", { className: "check" }, el("input", { type: "checkbox",
        className: "step-optional" }), "optional"),
      el("label", { className: "check" }, el("input", { type: "checkbox",
        className: "step-inverted" }), "inverted"),
      el("button", { type: "button", className: "ghost remove", text: "×",
        "aria-label": "remove step" }));
    row.dataset.collection = s.event_collection || "";
    row.dataset.actor = s.actor_property || "";
    row.querySelector(".step-optional").checked = Boolean(s.optional);
    row.querySelector(".step-inverted").checked = Boolean(s.inverted);
    row.querySelector(".remove").addEventListener("click", () => { row.remove(); renumberSteps();
      updateSnippets(); });
    row.querySelector(".step-collection").addEventListener("change", () => {
      row.dataset.collection = row.querySelector(".step-collection").value;
      fillStepRow(row);
    });
    $("steps").append(row);
    fillStepRow(row);
    renumberSteps();
    return row;
  }

  function renumberSteps() {
    document.querySelectorAll("#steps .row .label").forEach((label, i) => {
      label.textContent = "step " + (i + 1);
    });
  }

  function fillStepRow(row) {
    const collectionSelect = row.querySelector(".step-collection");
    const collection = row.dataset.collection || (state.collections[0] || {}).name || "";
    collectionSelect.replaceChildren(...state.collections.map((c) => option(c.name, c.name,
      c.name === collection)));
    if (collection && !collectionNamed(collection)) {
      collectionSelect.append(option(collection, collection, true));
    }
    row.dataset.collection = collectionSelect.value;
    const actor = row.querySelector(".step-actor");
    const current = actor.value || row.dataset.actor;
    const props = propertiesOf(collectionSelect.value);
    actor.replaceChildren(...props.map((p) => option(p, p, p === current)));
    if (current && !props.includes(current)) actor.append(option(current, current, true));
    row.dataset.actor = actor.value;
  }

  function showFields() {
    const analysis = $("analysis").value;
    const shown = {
      collection: analysis !== "funnel",
      target: TARGETED.has(analysis),
      percentile: analysis === "percentile",
      interval: GROUPABLE.has(analysis),
      group: GROUPABLE.has(analysis),
      latest: analysis === "extraction",
      filters: analysis !== "funnel",
      steps: analysis === "funnel",
    };
    for (const node of document.querySelectorAll("[data-for]")) {
      node.hidden = !shown[node.dataset.for];
    }
    if (analysis === "funnel" && !document.querySelector("#steps .row")) {
      addStepRow();
      addStepRow();
    }
    const kept = Object.keys(state.extra).sort();
    $("extra").hidden = !kept.length && !state.extraSteps.some((s) => Object.keys(s).length);
    $("extra").textContent = "Kept from the opened definition (not editable here): " +
      (kept.join(", ") || "step options") + ".";
  }

  // Read the value typed for a filter: a number for a numeric property, true/false for a
  // boolean, a JSON list for "in"; for text properties the text itself (JSON if it starts
  // with a quote or bracket); otherwise JSON when it parses, else the text.
  function filterValue(text, operator, kind) {
    const raw = text.trim();
    const json = () => { try { return { ok: true, value: JSON.parse(raw) }; } catch (_) {
      return { ok: false }; } };
    if (operator === "exists") return raw !== "false";
    if (operator === "in") {
      const parsed = json();
      if (parsed.ok && Array.isArray(parsed.value)) return parsed.value;
      return raw.split(",").map((part) => filterValue(part, "eq", kind));
    }
    if (kind === "num" && raw !== "" && !Number.isNaN(Number(raw))) return Number(raw);
    if (kind === "bool" && (raw === "true" || raw === "false")) return raw === "true";
    if (kind === "string" && !/^["[{]/.test(raw)) return text;
    const parsed = json();
    return parsed.ok ? parsed.value : text;
  }

  function parseTimeframe(text) {
    const raw = text.trim();
    if (raw.startsWith("{")) {
      try { return JSON.parse(raw); } catch (_) { throw new Error("The timeframe is not valid JSON."); }
    }
    if (raw.includes("..")) {
      const [start, end] = raw.split("..").map((part) => part.trim());
      return { start: start, end: end };
    }
    return raw;
  }

  // The query the builder describes, as the API's JSON body (with analysis_type).
  function buildQuery() {
    const analysis = $("analysis").value;
    const query = { analysis_type: analysis };
    if (analysis !== "funnel") query.event_collection = $("collection").value;
    if (TARGETED.has(analysis)) query.target_property = $("target-property").value;
    if (analysis === "percentile" && $("percentile").value.trim()) {
      query.percentile = Number($("percentile").value);
    }
    if ($("timeframe").value.trim()) query.timeframe = parseTimeframe($("timeframe").value);
    const timezone = $("timezone").value.trim();
    if (timezone) query.timezone = /^-?\d+$/.test(timezone) ? Number(timezone) : timezone;
    if (GROUPABLE.has(analysis)) {
      if ($("interval").value) query.interval = $("interval").value;
      const groups = [...$("group-by").selectedOptions].map((o) => o.value);
      if (groups.length) query.group_by = groups.length === 1 ? groups[0] : groups;
      if ($("order-by").value && groups.length) {
        query.order_by = [{ property_name: $("order-by").value,
          direction: $("order-direction").value }];
      }
      // Sent even without an order: the API then says what is missing.
      if ($("limit").value) query.limit = Number($("limit").value);
    }
    if (analysis === "extraction" && $("latest").value) query.latest = Number($("latest").value);
    if (analysis !== "funnel") {
      const filters = [...document.querySelectorAll("#filters .row")].map((row) => {
        const name = row.querySelector(".filter-property").value;
        const operator = row.querySelector(".filter-operator").value;
        return { property_name: name, operator: operator,
          property_value: filterValue(row.querySelector(".filter-value").value, operator,
            typeOf(query.event_collection, name)) };
      }).filter((f) => f.property_name);
      if (filters.length) query.filters = filters;
    } else {
      query.steps = [...document.querySelectorAll("#steps .row")].map((row, i) => {
        const step = Object.assign({}, state.extraSteps[i] || {});
        step.event_collection = row.querySelector(".step-collection").value;
        step.actor_property = row.querySelector(".step-actor").value;
        if (row.querySelector(".step-optional").checked) step.optional = true;
        if (row.querySelector(".step-inverted").checked) step.inverted = true;
        return step;
      });
    }
    return Object.assign(query, state.extra);
  }

  // Fill the builder from a stored definition (a saved query's or a dataset's).
  function loadQuery(query) {
    const q = {};
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && name !== "project_id") q[name] = value;
    }
    const analysis = $("analysis");
    if (![...analysis.options].some((o) => o.value === q.analysis_type)) {
      analysis.append(option(q.analysis_type));
    }
    analysis.value = q.analysis_type;
    if (q.event_collection) setAnalysisCollection(q.event_collection);
    refreshProperties();
    if (q.target_property) {
      const target = $("target-property");
      if (![...target.options].some((o) => o.value === q.target_property)) {
        target.append(option(q.target_property));
      }
      target.value = q.target_property;
    }
    if ("percentile" in q) $("percentile").value = q.percentile;
    $("timeframe").value = typeof q.timeframe === "string" ? q.timeframe
      : q.timeframe ? JSON.stringify(q.timeframe) : "";
    $("timezone").value = q.timezone === undefined ? "" : String(q.timezone);
    const interval = $("interval");
    if (q.interval && ![...interval.options].some((o) => o.value === q.interval)) {
      interval.append(option(q.interval));
    }
    interval.value = q.interval || "";
    const groups = q.group_by === undefined ? [] : [].concat(q.group_by);
    for (const o of $("group-by").options) o.selected = groups.includes(o.value);
    for (const g of groups) {
      if (![...$("group-by").options].some((o) => o.value === g)) {
        $("group-by").append(option(g, g, true));
      }
    }
    refreshOrderBy();
    const extra = {};
    const order = q.order_by === undefined ? [] : [].concat(q.order_by);
    if (order.length === 1 && typeof order[0] === "object") {
      $("order-by").value = order[0].property_name;
      $("order-direction").value = String(order[0].direction || "ASC").toUpperCase();
    } else {
      $("order-by").value = "";
      if (order.length) extra.order_by = q.order_by;
    }
    $("limit").value = q.limit === undefined ? "" : q.limit;
    if ("latest" in q) $("latest").value = q.latest;
    $("filters").replaceChildren();
    const filters = q.filters || [];
    if (filters.every((f) => f && f.property_name && f.operator && f.operator !== "or" &&
        OPERATORS.includes(f.operator))) {
      for (const f of filters) addFilterRow(f);
    } else {
      extra.filters = filters;
    }
    $("steps").replaceChildren();
    state.extraSteps = [];
    for (const step of q.steps || []) {
      addStepRow(step);
      state.extraSteps.push(Object.fromEntries(Object.entries(step)
        .filter(([name]) => !STEP_EDITED.has(name))));
    }
    for (const [name, value] of Object.entries(q)) {
      if (!EDITED.has(name)) extra[name] = value;
    }
    state.extra = extra;
    showFields();
    updateSnippets();
  }

  // --- running ----------------------------------------------------------------------------------

  async function runQuery(event) {
    if (event) event.preventDefault();
    let query;
    try {
      query = buildQuery();
      checkQuery(query);
    } catch (error) {
      setStatus(error.message, "error");
      return;
    }
    const body = Object.assign({}, query);
    delete body.analysis_type;
    await run(() => api("/queries/" + segment(query.analysis_type), { method: "POST", body: body }),
      query, "Result");
  }

  function checkQuery(query) {
    if (query.analysis_type !== "funnel" && !query.event_collection) {
      throw new Error("Choose a collection (send events first if there is none).");
    }
    if (TARGETED.has(query.analysis_type) && !query.target_property) {
      throw new Error("Choose a target property.");
    }
    if (query.analysis_type === "funnel" && !(query.steps || []).length) {
      throw new Error("A funnel needs at least one step.");
    }
  }

  async function run(call, query, title) {
    setStatus("Running…", "running");
    const started = performance.now();
    try {
      const answer = await call();
      state.runs += 1;
      showResult(query, answer, title);
      setStatus("Done in " + Math.round(performance.now() - started) + " ms.", "done");
    } catch (error) {
      setStatus(error.message, "error");
    }
  }

  async function openSavedQuery(doc) {
    showView("query");
    loadQuery(doc.query);
    let query;
    try {
      query = buildQuery();
    } catch (error) {
      setStatus(error.message, "error");
      return;
    }
    await run(async () => {
      const answer = await api("/queries/saved/" + segment(doc.query_name) + "/result");
      return answer.query && answer.query.analysis_type === "funnel" ? answer.result
        : { result: answer.result };
    }, query, "Saved query " + doc.query_name);
  }

  // --- datasets ---------------------------------------------------------------------------------

  function openDataset(doc) {
    state.dataset = doc;
    showView("dataset");
    $("dataset-name").textContent = doc.display_name || doc.dataset_name;
    const index = $("dataset-index");
    index.replaceChildren(...(doc.index_by || []).map((prop) => el("label", {},
      "Index " + prop, el("input", { className: "dataset-index-value", "data-property": prop,
        spellcheck: "false" }))));
    $("dataset-timeframe").value = typeof doc.query.timeframe === "string" ? doc.query.timeframe
      : JSON.stringify(doc.query.timeframe || "this_7_days");
    $("dataset-definition").textContent = JSON.stringify(doc, null, 2);
    updateDatasetSnippets();
  }

  function datasetRequest() {
    const doc = state.dataset;
    const inputs = [...document.querySelectorAll(".dataset-index-value")];
    const collection = doc.query.event_collection;
    let index;
    if (inputs.length === 1) {
      index = inputs[0].value;
    } else {
      const values = {};
      for (const input of inputs) {
        values[input.dataset.property] = filterValue(input.value, "eq",
          typeOf(collection, input.dataset.property));
      }
      index = JSON.stringify(values);
    }
    return { name: doc.dataset_name, index: index, timeframe: $("dataset-timeframe").value.trim() };
  }

  async function runDataset(event) {
    event.preventDefault();
    const r = datasetRequest();
    const params = new URLSearchParams({ index_by: r.index, timeframe: r.timeframe });
    await run(() => api("/datasets/" + segment(r.name) + "/results?" + params.toString()),
      state.dataset.query, "Dataset " + r.name);
  }

  function showView(view) {
    state.view = view;
    $("dataset-view").hidden = view !== "dataset";
    if (view === "query") updateSnippets();
  }

  // --- results: chart, table, raw JSON ----------------------------------------------------------

  function groupNames(query) {
    return query.group_by === undefined || query.group_by === null ? [] : [].concat(query.group_by);
  }

  function groupLabel(item, names) {
    return names.map((name) => fmt(item[name])).join(" / ");
  }

  function timeLabel(timeframe, interval) {
    const start = String((timeframe || {}).start || "");
    return /^(daily|weekly|monthly|yearly)$/.test(interval || "") || start.endsWith("T00:00:00.000Z")
      ? start.slice(0, 10) : start.slice(0, 16).replace("T", " ");
  }

  function showResult(query, answer, title) {
    $("result").hidden = false;
    $("result").dataset.run = String(state.runs);
    $("result-title").textContent = title;
    $("raw-json").textContent = JSON.stringify(answer, null, 2);
    $("legend").replaceChildren();
    const chart = $("chart");
    chart.replaceChildren();
    chart.dataset.kind = "none";
    const result = answer.result;
    const names = groupNames(query);
    if (query.analysis_type === "funnel") {
      const steps = answer.steps || query.steps || [];
      const labels = steps.map((s, i) => (i + 1) + ". " + s.event_collection +
        (s.inverted ? " (did not)" : "") + (s.optional ? " (optional)" : ""));
      funnelChart(labels, result);
      table(["step", "collection", "actor property", "actors", "of first step"],
        steps.map((s, i) => [i + 1, s.event_collection, s.actor_property, result[i],
          result[0] ? Math.round(1000 * result[i] / result[0]) / 10 + "%" : "—"]));
      return;
    }
    if (Array.isArray(result) && result.length && result[0] && typeof result[0] === "object" &&
        "timeframe" in result[0] && "value" in result[0]) {
      const labels = result.map((bucket) => timeLabel(bucket.timeframe, query.interval));
      // A bucket lists only the groups with events: a count (or sum) of the others is 0.
      const zero = ["count", "count_unique", "sum"].includes(query.analysis_type) ? 0 : undefined;
      const series = intervalSeries(result, names, zero);
      lineChart(labels, series);
      table(["interval"].concat(series.map((s) => s.name)),
        labels.map((label, i) => [label].concat(series.map((s) => s.values[i]))));
      return;
    }
    if (query.analysis_type === "extraction" && Array.isArray(result)) {
      const columns = [];
      const flat = result.map((event) => flatten(event));
      for (const row of flat) for (const name of Object.keys(row)) {
        if (!columns.includes(name)) columns.push(name);
      }
      table(columns, flat.map((row) => columns.map((name) => row[name])));
      return;
    }
    if (Array.isArray(result) && names.length) {
      const labelNames = names;
      if (result.length && !("result" in (result[0] || {}))) {  // multi_analysis by group
        const labels = Object.keys(result[0]).filter((k) => !labelNames.includes(k));
        table(labelNames.concat(labels), result.map((item) =>
          labelNames.map((n) => item[n]).concat(labels.map((l) => item[l]))));
        return;
      }
      barChart(result.map((item) => groupLabel(item, labelNames)),
        result.map((item) => item.result));
      table(labelNames.concat([query.analysis_type]),
        result.map((item) => labelNames.map((n) => item[n]).concat([item.result])));
      return;
    }
    if (Array.isArray(result)) {
      table([query.target_property || "value"], result.map((value) => [value]));
      return;
    }
    if (result && typeof result === "object") {
      table(["analysis", "result"], Object.entries(result));
      return;
    }
    chart.dataset.kind = "metric";
    chart.append(el("div", { className: "metric", text: fmt(result) }));
    table([query.analysis_type], [[result]]);
  }

  function intervalSeries(buckets, names, missing) {
    const order = [];
    const byName = new Map();
    buckets.forEach((bucket, i) => {
      const value = bucket.value;
      let entries;
      if (Array.isArray(value) && names.length) {
        entries = value.map((item) => [groupLabel(item, names), "result" in item ? item.result
          : null]);
      } else if (value && typeof value === "object") {
        entries = Object.entries(value);
      } else {
        entries = [["result", value]];
      }
      for (const [name, v] of entries) {
        if (!byName.has(name)) {
          byName.set(name, new Array(buckets.length).fill(missing));
          order.push(name);
        }
        byName.get(name)[i] = v;
      }
    });
    return order.map((name) => ({ name: name, values: byName.get(name) }));
  }

  function flatten(value, prefix, out) {
    const into = out || {};
    for (const [name, v] of Object.entries(value || {})) {
      const path = prefix ? prefix + "." + name : name;
      if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, path, into);
      else into[path] = v;
    }
    return into;
  }

  function table(columns, rows) {
    const numeric = columns.map((_, i) => rows.some((row) => typeof row[i] === "number"));
    const head = el("thead", {}, el("tr", {}, ...columns.map((c, i) =>
      el("th", { className: numeric[i] ? "num" : "", text: c }))));
    const body = el("tbody", {}, ...rows.slice(0, MAX_ROWS).map((row) => el("tr", {},
      ...row.map((value) =>
        el("td", { className: typeof value === "number" ? "num" : "", text: fmt(value) })))));
    if (rows.length > MAX_ROWS) {
      body.append(el("tr", { className: "more" }, el("td", { colspan: columns.length,
        text: "… " + (rows.length - MAX_ROWS) + " more rows: see the raw JSON." })));
    }
    $("table").replaceChildren(head, body);
  }

  function niceMax(max) {
    if (!(max > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(max)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
    return 10 * power;
  }

  function legend(series) {
    if (series.length < 2) return;
    $("legend").replaceChildren(...series.map((s, i) => el("span", {},
      swatch(PALETTE[i % PALETTE.length]), s.name)));
  }

  function swatch(color) {
    const box = svg("svg", { viewBox: "0 0 10 10", "aria-hidden": "true" });
    box.append(svg("rect", { width: 10, height: 10, rx: 2, fill: color }));
    return box;
  }

  function lineChart(labels, series) {
    if (!series.some((s) => s.values.some((v) => typeof v === "number"))) return;
    const W = 760, H = 280, left = 52, right = 40, top = 14, bottom = 30;
    const plotW = W - left - right, plotH = H - top - bottom;
    const values = series.flatMap((s) => s.values).filter((v) => typeof v === "number");
    const low = Math.min(0, ...values);
    const high = niceMax(Math.max(0, ...values));
    const x = (i) => left + (labels.length === 1 ? plotW / 2 : i * plotW / (labels.length - 1));
    const y = (v) => top + plotH - (v - low) / (high - low || 1) * plotH;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "line chart" });
    for (let t = 0; t <= 4; t++) {
      const v = low + (high - low) * t / 4;
      root.append(svg("line", { class: "grid-line", x1: left, x2: W - right, y1: y(v), y2: y(v) }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, fmt(v)));
    }
    root.append(svg("line", { class: "axis", x1: left, x2: W - right, y1: y(low), y2: y(low) }));
    const every = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach((label, i) => {
      if (i % every === 0 || i === labels.length - 1 && labels.length <= 8) {
        root.append(svg("text", { x: x(i), y: H - 10, "text-anchor": "middle" }, label));
      }
    });
    series.forEach((s, n) => {
      const color = PALETTE[n % PALETTE.length];
      let d = "";
      let pen = "M";
      s.values.forEach((v, i) => {
        if (typeof v !== "number") { pen = "M"; return; }
        d += pen + x(i).toFixed(1) + " " + y(v).toFixed(1) + " ";
        pen = "L";
      });
      const path = svg("path", { class: "series", d: d.trim(), stroke: color,
        "data-series": s.name });
      path.append(svg("title", {}, s.name));
      root.append(path);
      if (labels.length <= 62) {
        s.values.forEach((v, i) => {
          if (typeof v !== "number") return;
          const dot = svg("circle", { class: "point", cx: x(i).toFixed(1), cy: y(v).toFixed(1),
            r: 3, fill: color });
          dot.append(svg("title", {}, s.name + " · " + labels[i] + ": " + fmt(v)));
          root.append(dot);
        });
      }
    });
    $("chart").dataset.kind = "line";
    $("chart").append(root);
    legend(series);
  }

  function barChart(labels, values) {
    if (!values.some((v) => typeof v === "number")) return;  // e.g. select_unique lists
    const shown = labels.slice(0, MAX_BARS);
    const W = 760, rowH = 26, top = 6, labelW = 190, valueW = 80;
    const H = top * 2 + rowH * shown.length;
    const numbers = values.slice(0, MAX_BARS).map((v) => (typeof v === "number" ? v : 0));
    const high = Math.max(...numbers, 0) || 1;
    const plotW = W - labelW - valueW;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "bar chart" });
    shown.forEach((label, i) => {
      const yTop = top + i * rowH;
      const width = Math.max(0, numbers[i]) / high * plotW;
      const text = label.length > 28 ? label.slice(0, 27) + "…" : label;
      root.append(svg("text", { x: labelW - 8, y: yTop + 17, "text-anchor": "end" }, text));
      const bar = svg("rect", { class: "bar", x: labelW, y: yTop + 4, height: rowH - 8,
        width: width.toFixed(1), rx: 3, fill: PALETTE[0], "data-group": label,
        "data-value": fmt(values[i]) });
      bar.append(svg("title", {}, label + ": " + fmt(values[i])));
      root.append(bar);
      root.append(svg("text", { class: "value", x: labelW + width + 6, y: yTop + 17 },
        fmt(values[i])));
    });
    $("chart").dataset.kind = "bars";
    $("chart").append(root);
    if (labels.length > MAX_BARS) {
      $("legend").replaceChildren(el("span", { className: "muted",
        text: "The chart shows the first " + MAX_BARS + " of " + labels.length +
          " groups; the table has them all." }));
    }
  }

  function funnelChart(labels, values) {
    const W = 760, rowH = 46, labelW = 200, valueW = 120, top = 6;
    const H = top * 2 + rowH * labels.length;
    const first = values[0] || 0;
    const plotW = W - labelW - valueW;
    const center = labelW + plotW / 2;
    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, role: "img",
      "aria-label": "funnel chart" });
    const widths = values.map((v) => (first ? Math.max(2, v / first * plotW) : 2));
    labels.forEach((label, i) => {
      const yTop = top + i * rowH;
      if (i > 0) {
        const a = widths[i - 1] / 2, b = widths[i] / 2, y0 = yTop - 10, y1 = yTop + 6;
        root.append(svg("polygon", { class: "funnel-link", fill: PALETTE[0], "fill-opacity": 0.15,
          points: [center - a, y0, center + a, y0, center + b, y1, center - b, y1].join(" ") }));
      }
      const text = label.length > 30 ? label.slice(0, 29) + "…" : label;
      root.append(svg("text", { x: 8, y: yTop + 24 }, text));
      const rect = svg("rect", { class: "funnel-step", x: (center - widths[i] / 2).toFixed(1),
        y: yTop + 6, width: widths[i].toFixed(1), height: rowH - 16, rx: 3,
        fill: PALETTE[0], "data-value": fmt(values[i]) });
      rect.append(svg("title", {}, label + ": " + fmt(values[i])));
      root.append(rect);
      const share = first ? " · " + Math.round(1000 * values[i] / first) / 10 + "%" : "";
      root.append(svg("text", { class: "value", x: W - valueW + 8, y: yTop + 24 },
        fmt(values[i]) + share));
    });
    $("chart").dataset.kind = "funnel";
    $("chart").append(root);
  }

  // --- snippets: the same query as Python, a keen command line and curl -------------------------

  function shellQuote(text) {
    const s = String(text);
    return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  function py(value) {
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "number") return String(value);
    if (typeof value === "string") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(py).join(", ") + "]";
    return "{" + Object.entries(value).map(([k, v]) => JSON.stringify(k) + ": " + py(v))
      .join(", ") + "}";
  }

  const PY_ORDER = ["target_property", "percentile", "analyses", "steps", "timeframe",
    "timezone", "interval", "filters", "group_by", "order_by", "limit", "latest"];

  function pythonSnippet(query) {
    const args = [];
    if (query.analysis_type !== "funnel") args.push(py(query.event_collection));
    const names = Object.keys(query).filter((n) => n !== "analysis_type" &&
      n !== "event_collection");
    names.sort((a, b) => rank(PY_ORDER, a) - rank(PY_ORDER, b));
    for (const name of names) args.push(name + "=" + py(query[name]));
    return "import keen\n\nresult = keen." + query.analysis_type + "(\n" +
      args.map((a) => "    " + a + ",\n").join("") + ")\nprint(result)\n";
  }

  function rank(order, name) {
    const i = order.indexOf(name);
    return i < 0 ? order.length : i;
  }

  function compactFilter(f) {
    if (!f || f.operator === "or" || typeof f.property_name !== "string" ||
        !/^\S+$/.test(f.property_name) || !("property_value" in f)) return null;
    const v = f.property_value;
    let text;
    if (typeof v === "string") {
      let parses = true;
      try { JSON.parse(v); } catch (_) { parses = false; }
      text = parses || v !== v.trim() || v === "" ? JSON.stringify(v) : v;
    } else {
      text = JSON.stringify(v);
    }
    return f.property_name + " " + f.operator + " " + text;
  }

  function cliSnippet(query) {
    const parts = ["keen", query.analysis_type];
    const add = (flag, value) => parts.push(flag, shellQuote(value));
    if (query.analysis_type !== "funnel") parts.push(shellQuote(query.event_collection));
    const rest = Object.assign({}, query);
    delete rest.analysis_type;
    delete rest.event_collection;
    if ("target_property" in rest) add("--target-property", rest.target_property);
    if ("percentile" in rest) add("--percentile", rest.percentile);
    if ("steps" in rest) add("--steps", JSON.stringify(rest.steps));
    if ("analyses" in rest) add("--analyses", JSON.stringify(rest.analyses));
    if ("timeframe" in rest) {
      const t = rest.timeframe;
      add("--timeframe", typeof t === "string" ? t
        : t && typeof t.start === "string" && typeof t.end === "string" &&
          Object.keys(t).length === 2 && !t.start.includes("..") ? t.start + ".." + t.end
          : JSON.stringify(t));
    }
    if ("timezone" in rest) add("--timezone", rest.timezone);
    if ("interval" in rest) add("--interval", rest.interval);
    for (const g of "group_by" in rest ? [].concat(rest.group_by) : []) add("--group-by", g);
    for (const o of "order_by" in rest ? [].concat(rest.order_by) : []) {
      add("--order-by", typeof o === "string" ? o
        : o.property_name + ":" + String(o.direction || "ASC").toLowerCase());
    }
    if ("limit" in rest) add("--limit", rest.limit);
    if ("latest" in rest) add("--latest", rest.latest);
    for (const p of "property_names" in rest ? [].concat(rest.property_names) : []) {
      add("--property-name", p);
    }
    if ("email" in rest) add("--email", rest.email);
    if ("max_age" in rest) add("--max-age", rest.max_age);
    for (const f of rest.filters || []) add("--filter", compactFilter(f) || JSON.stringify(f));
    const known = ["target_property", "percentile", "steps", "analyses", "timeframe", "timezone",
      "interval", "group_by", "order_by", "limit", "latest", "property_names", "email",
      "max_age", "filters"];
    const unknown = Object.keys(rest).filter((n) => !known.includes(n));
    let text = wrap(parts);
    if (unknown.length) {
      text += "\n# not expressible as flags, use the Python call: " + unknown.join(", ");
    }
    return text + "\n";
  }

  function wrap(parts) {
    // One flag (with its value) per line after the command, as a shell continuation.
    const lines = [];
    let line = [];
    for (const part of parts) {
      if (part.startsWith("--") && line.length) { lines.push(line.join(" ")); line = []; }
      line.push(part);
    }
    lines.push(line.join(" "));
    return lines.join(" \\\n  ");
  }

  function curlSnippet(query) {
    const body = Object.assign({}, query);
    delete body.analysis_type;
    return "curl \"$KEEN_BASE_URL/3.0/projects/$KEEN_PROJECT_ID/queries/" +
      query.analysis_type + "\" \\\n  -H \"Authorization: $KEEN_READ_KEY\" \\\n" +
      "  -H 'Content-Type: application/json' \\\n  -d " + shellQuote(JSON.stringify(body)) +
      "\n";
  }

  function setSnippets(python, cli, curl) {
    $("snippet-python").textContent = python;
    $("snippet-cli").textContent = cli;
    $("snippet-curl").textContent = curl;
  }

  function updateSnippets() {
    if (state.view !== "query") return;
    let query;
    try {
      query = buildQuery();
    } catch (error) {
      setSnippets(error.message, error.message, error.message);
      return;
    }
    setSnippets(pythonSnippet(query), cliSnippet(query), curlSnippet(query));
  }

  function updateDatasetSnippets() {
    if (state.view !== "dataset") return;
    const r = datasetRequest();
    const python = "import os\n\nfrom keen.client import KeenClient\n\n" +
      "client = KeenClient(\n    project_id=os.environ[\"KEEN_PROJECT_ID\"],\n" +
      "    read_key=os.environ[\"KEEN_READ_KEY\"],\n" +
      "    base_url=os.environ[\"KEEN_BASE_URL\"],\n)\n" +
      "print(client.cached_datasets.results(" + py(r.name) + ", index_by=" + py(r.index) +
      ", timeframe=" + py(r.timeframe.startsWith("{") ? safeJson(r.timeframe) : r.timeframe) +
      "))\n";
    const cli = wrap(["keen", "datasets", "results", shellQuote(r.name), "--index-by",
      shellQuote(r.index), "--timeframe", shellQuote(r.timeframe)]) + "\n";
    const curl = "curl -G \"$KEEN_BASE_URL/3.0/projects/$KEEN_PROJECT_ID/datasets/" +
      segment(r.name) + "/results\" \\\n  -H \"Authorization: $KEEN_READ_KEY\" \\\n" +
      "  --data-urlencode " + shellQuote("index_by=" + r.index) + " \\\n" +
      "  --data-urlencode " + shellQuote("timeframe=" + r.timeframe) + "\n";
    setSnippets(python, cli, curl);
  }

  function safeJson(text) {
    try { return JSON.parse(text); } catch (_) { return text; }
  }

  async function copy(button) {
    const text = $(button.dataset.copy).textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($(button.dataset.copy));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  // --- wiring -----------------------------------------------------------------------------------

  function start() {
    const projects = $("project");
    projects.replaceChildren(...CONFIG.projects.map((p) => option(p.id)));
    projects.addEventListener("change", () => {
      state.project = CONFIG.projects.find((p) => p.id === projects.value);
      loadProject();
    });
    const form = $("query-form");
    form.addEventListener("submit", runQuery);
    form.addEventListener("input", () => { showView("query"); updateSnippets(); });
    form.addEventListener("change", (event) => {
      if (event.target.id === "analysis") { state.extra = {}; state.extraSteps = []; }
      if (event.target.id === "collection") {
        refreshProperties();
        showCollection($("collection").value);
      }
      if (event.target.id === "analysis") refreshProperties();
      if (event.target.id === "group-by") refreshOrderBy();
      if (event.target.classList.contains("step-actor")) {
        event.target.closest(".row").dataset.actor = event.target.value;
      }
      showFields();
      showView("query");
      updateSnippets();
    });
    $("add-filter").addEventListener("click", () => { addFilterRow(); updateSnippets(); });
    $("add-step").addEventListener("click", () => { addStepRow(); updateSnippets(); });
    $("dataset-form").addEventListener("submit", runDataset);
    $("dataset-form").addEventListener("input", updateDatasetSnippets);
    for (const button of document.querySelectorAll("button.copy")) {
      button.addEventListener("click", () => copy(button));
    }
    showFields();
    updateSnippets();
    loadTimezones();
    loadProject().then(() => {
      updateSnippets();
      document.body.dataset.ready = "true";
    });
  }

  start();
}());
