/* VAT Bench leaderboard: the Models board and the Conditions table (sort, filter, render). No network,
 * no libraries. Reads window.VAT_LEADERBOARD (data/leaderboard.js, schema_version 1); the board's
 * statistics (tax, intervals, rank ranges) are computed in Python (runner/leaderboard/site.py), this file
 * only shows them. Every value from the data goes into the page through textContent or a validated
 * href, never through innerHTML. The view, filters and sort live in the address (#view=…&target=…), so a
 * view can be shared by copying the URL. */
(function () {
  "use strict";

  var SCHEMA_VERSION = 1;
  var PAGE = /^entries\/[a-z0-9_.-]+\.html$/;
  var data = window.VAT_LEADERBOARD;
  var body = document.getElementById("board-body");
  var head = document.getElementById("board-head");
  var mbody = document.getElementById("models-body");
  var mhead = document.getElementById("models-head");
  var count = document.getElementById("count");
  if (!body || !head) return;
  if (!data || data.schema_version !== SCHEMA_VERSION) {
    count.textContent = "data/leaderboard.js is missing or has another schema_version; rebuild the site.";
    return;
  }
  var board = data.board || [];

  function entryOf(r) { return data.entries[r.entry] || { display_name: r.entry, model: "" }; }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, digits, signed) {
    if (!isNum(x)) return "–";
    var s = x.toFixed(digits);
    return signed && x >= 0 ? "+" + s : s;
  }
  function interval(ci, digits, signed) {
    if (!ci || !isNum(ci[0]) || !isNum(ci[1])) return null;
    return "[" + fmt(ci[0], digits, signed) + ", " + fmt(ci[1], digits, signed) + "]";
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function spansZero(ci) { return !!ci && isNum(ci[0]) && isNum(ci[1]) && ci[0] <= 0 && ci[1] >= 0; }

  var STATUS_RANK = { verified: 2, checked: 1, local: 0 };

  /* ---------------------------------------------------------------- cells */

  function entryCell(r, td, anchor) {
    var e = entryOf(r);
    td.className = "entry-cell";
    var page = e.page || "";
    var name = PAGE.test(page) ? el("a", null, e.display_name) : el("span", null, e.display_name);
    if (PAGE.test(page)) name.setAttribute("href", page + (anchor ? "#" + encodeURIComponent(anchor) : ""));
    td.appendChild(name);
    td.appendChild(el("span", "model", e.model));
  }
  function directionCell(r, td) {
    td.appendChild(el("span", "dir-" + (r.direction === "suppress" ? "suppress" : "reinforce"), (r.direction === "suppress" ? "− " : "+ ") + r.direction));
  }
  function numberWithInterval(td, value, ci, digits, signed) {
    td.appendChild(el("span", null, fmt(value, digits, signed)));
    var text = interval(ci, 2, signed);
    td.appendChild(el("span", "ci", text === null ? "no interval" : text));
  }
  function gainCell(r, td) {
    numberWithInterval(td, r.gain, r.gain_ci, 3, true);
    if (spansZero(r.gain_ci)) {
      var c = el("span", "ci noise", "spans 0: GND not interpretable");
      td.appendChild(c);
    }
  }
  function nullLine(r, key) {
    var n = r["null"] && r["null"][key];
    if (!n) return null;
    return "null " + fmt(n.mean, 2) + " · p " + fmt(n.p, 2);
  }
  function noise(r, key) {
    if (r.signal && typeof r.signal[key] === "boolean") return !r.signal[key];
    if ((r.flags || []).indexOf(key + "_within_noise") >= 0) return true;
    return null;
  }
  /* a tax column shows the bias-corrected estimate with its interval (the interval belongs to it),
   * then the raw value and its permutation null; rows from before the null show the raw value and
   * the paper's ± std (sd over 80 % subsamples), labelled as such and never as an interval */
  function corrected(r, key) { return isNum(r[key + "_corrected"]) ? r[key + "_corrected"] : r[key]; }
  function taxCellOf(key, digits) {
    return function (r, td) {
      var hasNull = !!(r["null"] && r["null"][key]);
      td.appendChild(el("span", null, fmt(corrected(r, key), digits, isNum(r[key + "_corrected"]))));
      var ci = interval(r[key + "_ci"], 2, isNum(r[key + "_corrected"]));
      if (ci !== null) td.appendChild(el("span", "ci", ci));
      else if (key === "nvat") td.appendChild(el("span", "ci", "± " + fmt(r.nvat_std, 3) + " std (paper)"));
      else td.appendChild(el("span", "ci", "no interval"));
      if (hasNull) td.appendChild(el("span", "ci", "raw " + fmt(r[key], 2) + " · " + nullLine(r, key)));
      else td.appendChild(el("span", "ci", "raw (no null)"));
      if (noise(r, key) === true) {
        td.classList.add("within-noise");
        var needed = r.scenes_needed && r.scenes_needed[key];
        td.appendChild(el("span", "ci noise", "within noise" + (isNum(needed) ? " · needs ~" + needed + " scenes" : "")));
      }
    };
  }
  var nvatCell = taxCellOf("nvat", 3);
  var giniCell = taxCellOf("gini", 3);
  function hubsCell(r, td) {
    var hubs = r.hubs || [];
    hubs.forEach(function (h) { td.appendChild(el("span", "hub", h)); });
    if (r.hub_test) { if (!hubs.length) td.appendChild(el("span", "ci", "none (tested)")); }
    else if (hubs.length) td.appendChild(el("span", "ci", "top-3, untested"));
  }
  function share(x) {
    /* floor, so that an incomplete run never shows as 100% */
    var pct = isNum(x) ? Math.floor(x * 1000) / 10 : null;
    return pct === null ? "–" : (pct === 100 ? "100" : pct.toFixed(1)) + "%";
  }
  function coverageCell(r, td) {
    var c = r.coverage || {};
    td.textContent = share(r.coverage_share);
    td.title = (c.parsed || 0) + " of " + (c.planned || 0) + " judgments parsed · " + (r.n_scenes || 0) + " scenes";
  }
  function statusCell(r, td) {
    var titles = {
      verified: "integrity checks passed and a replay against the provider agreed",
      checked: "recomputed from the submitted judgments; not replayed against the provider",
      local: "a run in this machine's store; not a submission, not verified"
    };
    var b = el("span", "badge badge-" + (STATUS_RANK.hasOwnProperty(r.status) ? r.status : "local"), r.status);
    b.title = titles[r.status] || "";
    td.appendChild(b);
    if (r.release) td.appendChild(el("span", "ci", r.release));
  }
  function rankCell(b, td) {
    if (!b.ranked) {
      td.appendChild(el("span", null, "–"));
      td.appendChild(el("span", "ci", b.effect ? "no null" : "no effect"));
      td.title = "not ranked: " + (b.unranked_because || "no tax");
      return;
    }
    td.appendChild(el("span", "rank", b.rank_lo === b.rank_hi ? String(b.rank_lo) : b.rank_lo + "–" + b.rank_hi));
    if (b.rank_lo !== b.rank_hi) td.appendChild(el("span", "ci", "tied"));
  }
  function taxCell(b, td) {
    numberWithInterval(td, b.tax, b.tax_ci, 3, true);
    if (b.tax_basis !== "nvat_corrected") td.appendChild(el("span", "ci noise", "uncorrected nVAT"));
  }
  function boardGainCell(b, td) {
    numberWithInterval(td, b.gain, b.gain_ci, 3, true);
    if (!b.effect) td.appendChild(el("span", "ci noise", "includes 0"));
  }

  /* ---------------------------------------------------------------- columns */

  var COLUMNS = [
    { key: "entry", label: "Entry", type: "text", value: function (r) { return entryOf(r).display_name; }, cell: function (r, td) { entryCell(r, td, r.anchor); } },
    { key: "strategy", label: "Strategy", type: "text", value: function (r) { return r.step === null || r.step === undefined ? r.strategy : r.strategy + "@" + r.step; } },
    { key: "target", label: "Target", type: "text", value: function (r) { return r.target; } },
    { key: "direction", label: "Direction", type: "text", value: function (r) { return r.direction; }, cell: directionCell },
    { key: "gain", label: "Gain [95% CI]", type: "num", value: function (r) { return r.gain; }, cell: gainCell },
    { key: "nvat", label: "nVAT corrected [95% CI]", type: "num", value: function (r) { return corrected(r, "nvat"); }, cell: nvatCell },
    { key: "gini", label: "Gini corrected [95% CI]", type: "num", value: function (r) { return corrected(r, "gini"); }, cell: giniCell },
    { key: "hubs", label: "Hubs", type: "text", value: function (r) { return (r.hubs || []).join(" "); }, cell: hubsCell },
    { key: "coverage", label: "Coverage", type: "num", value: function (r) { return r.coverage_share; }, cell: coverageCell },
    { key: "status", label: "Status", type: "num", value: function (r) { return STATUS_RANK[r.status]; }, cell: statusCell }
  ];
  var ORDER = {};
  board.forEach(function (b, i) { ORDER[b.entry] = i; });
  var MODEL_COLUMNS = [
    { key: "rank", label: "Rank", type: "num", value: function (b) { return ORDER[b.entry]; }, cell: rankCell },
    { key: "entry", label: "Entry", type: "text", value: function (b) { return entryOf(b).display_name; }, cell: function (b, td) { entryCell(b, td, ""); } },
    { key: "tax", label: "Tax [95% CI]", type: "num", value: function (b) { return b.tax; }, cell: taxCell },
    { key: "gain", label: "Gain [95% CI]", type: "num", value: function (b) { return b.gain; }, cell: boardGainCell },
    { key: "signal", label: "Signal", type: "num", sortable: false, value: function (b) { return b.signal_share; }, cell: function (b, td) { td.textContent = share(b.signal_share); td.title = "share of conditions whose nVAT beats its null"; } },
    { key: "conditions", label: "Conditions", type: "num", sortable: false, value: function (b) { return b.conditions; }, cell: function (b, td) { td.textContent = b.conditions + " of " + b.release_conditions; } },
    { key: "coverage", label: "Coverage", type: "num", sortable: false, value: function (b) { return b.coverage_share; }, cell: function (b, td) { td.textContent = share(b.coverage_share); } },
    { key: "status", label: "Status", type: "num", value: function (b) { return STATUS_RANK[b.status]; }, cell: statusCell }
  ];

  /* ---------------------------------------------------------------- state, kept in the address */

  var DEFAULTS = { view: "models", q: "", strategy: "", target: "", direction: "", status: "", sort: "gain", dir: "-1", msort: "rank", mdir: "1" };
  var state = {};
  function readHash() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i > 0) {
        try { params[decodeURIComponent(kv.slice(0, i))] = decodeURIComponent(kv.slice(i + 1)); } catch (e) { /* ignore a broken part */ }
      }
    });
    Object.keys(DEFAULTS).forEach(function (k) { state[k] = params.hasOwnProperty(k) ? params[k] : DEFAULTS[k]; });
    if (state.view !== "conditions") state.view = "models";
  }
  function writeHash() {
    var parts = [];
    Object.keys(DEFAULTS).forEach(function (k) {
      if (state[k] !== DEFAULTS[k] || k === "view") parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(state[k]));
    });
    var hash = "#" + parts.join("&");
    if (location.hash === hash) return;
    try { history.replaceState(null, "", hash); } catch (e) { location.hash = hash; }
  }

  /* ---------------------------------------------------------------- tables */

  function compare(col, dir) {
    return function (a, b) {
      var x = col.value(a), y = col.value(b);
      if (col.type === "num") {
        var nx = isNum(x), ny = isNum(y);
        if (!nx || !ny) return nx === ny ? 0 : nx ? -1 : 1; /* missing numbers always last */
        return dir * (x - y);
      }
      return dir * String(x || "").localeCompare(String(y || ""));
    };
  }

  function matches(r) {
    if (state.strategy && COLUMNS[1].value(r) !== state.strategy) return false;
    if (state.target && r.target !== state.target) return false;
    if (state.direction && r.direction !== state.direction) return false;
    if (state.status && r.status !== state.status) return false;
    if (state.q) {
      var e = entryOf(r);
      var hay = [e.display_name, e.model, e.provider, r.strategy, r.target, r.direction, (r.hubs || []).join(" "), r.status].join(" ").toLowerCase();
      if (hay.indexOf(state.q.toLowerCase()) < 0) return false;
    }
    return true;
  }

  function renderHead(row, columns, sortKey, dirKey) {
    row.textContent = "";
    columns.forEach(function (col) {
      var th = el("th", col.type === "num" && col.key !== "status" ? "num" : null);
      th.setAttribute("scope", "col");
      th.setAttribute("data-key", col.key);
      if (col.sortable === false) { th.textContent = col.label; row.appendChild(th); return; }
      var dir = Number(state[dirKey]);
      th.setAttribute("aria-sort", state[sortKey] === col.key ? (dir > 0 ? "ascending" : "descending") : "none");
      var button = el("button", null, col.label);
      button.type = "button";
      button.addEventListener("click", function () {
        if (state[sortKey] === col.key) state[dirKey] = String(-Number(state[dirKey]));
        else {
          state[sortKey] = col.key;
          /* lower is better for rank and the taxes; higher for gain */
          state[dirKey] = col.type === "num" && ["rank", "tax", "nvat", "gini"].indexOf(col.key) < 0 ? "-1" : "1";
        }
        render();
      });
      th.appendChild(button);
      row.appendChild(th);
    });
  }

  function renderRows(tbody, columns, items, sortKey, dirKey, entryAttr) {
    var col = columns.filter(function (c) { return c.key === state[sortKey]; })[0] || columns[0];
    var rows = items.slice().sort(compare(col, Number(state[dirKey])));
    tbody.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr");
      tr.setAttribute("data-entry", r[entryAttr]);
      columns.forEach(function (c) {
        var td = el("td", c.type === "num" && c.key !== "status" ? "num" : null);
        td.setAttribute("data-col", c.key);
        if (c.cell) c.cell(r, td); else td.textContent = c.value(r);
        tr.appendChild(td);
      });
      tbody.appendChild(tr);
    });
    return rows.length;
  }

  function render() {
    var conditions = state.view === "conditions";
    document.getElementById("models-view").hidden = conditions;
    document.getElementById("conditions-view").hidden = !conditions;
    document.getElementById("tab-models").setAttribute("aria-current", conditions ? "false" : "page");
    document.getElementById("tab-conditions").setAttribute("aria-current", conditions ? "page" : "false");
    renderHead(head, COLUMNS, "sort", "dir");
    var shown = renderRows(body, COLUMNS, data.rows.filter(matches), "sort", "dir", "entry");
    count.textContent = shown + " of " + data.rows.length + " rows";
    if (mhead && mbody) {
      renderHead(mhead, MODEL_COLUMNS, "msort", "mdir");
      renderRows(mbody, MODEL_COLUMNS, board, "msort", "mdir", "entry");
    }
    ["q", "strategy", "target", "direction", "status"].forEach(function (k) {
      var input = document.getElementById("f-" + k);
      if (input && input.value !== state[k]) input.value = state[k];
    });
    writeHash();
  }

  function fillSelect(id, values) {
    var select = document.getElementById(id);
    values.forEach(function (v) { var o = el("option", null, v); o.value = v; select.appendChild(o); });
    select.addEventListener("change", function () { state[id.slice(2)] = select.value; render(); });
  }
  function distinct(fn) {
    var seen = {};
    data.rows.forEach(function (r) { seen[fn(r)] = true; });
    return Object.keys(seen).sort();
  }

  readHash();
  fillSelect("f-strategy", distinct(COLUMNS[1].value));
  fillSelect("f-target", distinct(function (r) { return r.target; }));
  fillSelect("f-direction", distinct(function (r) { return r.direction; }));
  fillSelect("f-status", distinct(function (r) { return r.status; }));
  var q = document.getElementById("f-q");
  q.addEventListener("input", function () { state.q = q.value.trim(); render(); });
  document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  ["models", "conditions"].forEach(function (view) {
    document.getElementById("tab-" + view).addEventListener("click", function (ev) {
      ev.preventDefault();
      state.view = view;
      render();
    });
  });
  window.addEventListener("hashchange", function () { readHash(); render(); });
  render();
})();
