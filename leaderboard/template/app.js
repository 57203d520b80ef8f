/* VAT Bench leaderboard table: sort, filter, render. No network, no libraries.
 * Reads window.VAT_LEADERBOARD (data/leaderboard.js, schema_version 1). Every value from the data goes
 * into the page through textContent or a validated href, never through innerHTML. */
(function () {
  "use strict";

  var SCHEMA_VERSION = 1;
  var PAGE = /^entries\/[a-z0-9_.-]+\.html$/;
  var data = window.VAT_LEADERBOARD;
  var body = document.getElementById("board-body");
  var head = document.getElementById("board-head");
  var count = document.getElementById("count");
  if (!body || !head) return;
  if (!data || data.schema_version !== SCHEMA_VERSION) {
    count.textContent = "data/leaderboard.js is missing or has another schema_version; rebuild the site.";
    return;
  }

  function entryOf(r) { return data.entries[r.entry] || { display_name: r.entry, model: "" }; }
  function isNum(x) { return typeof x === "number" && isFinite(x); }
  function fmt(x, digits, signed) {
    if (!isNum(x)) return "–";
    var s = x.toFixed(digits);
    return signed && x >= 0 ? "+" + s : s;
  }
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  var STATUS_RANK = { verified: 2, checked: 1, local: 0 };
  var COLUMNS = [
    { key: "entry", label: "Entry", type: "text", value: function (r) { return entryOf(r).display_name; }, cell: entryCell },
    { key: "strategy", label: "Strategy", type: "text", value: function (r) { return r.step === null || r.step === undefined ? r.strategy : r.strategy + "@" + r.step; } },
    { key: "target", label: "Target", type: "text", value: function (r) { return r.target; } },
    { key: "direction", label: "Direction", type: "text", value: function (r) { return r.direction; }, cell: directionCell },
    { key: "gain", label: "Gain ± 95% CI", type: "num", value: function (r) { return r.gain; }, cell: gainCell },
    { key: "nvat", label: "nVAT ± std", type: "num", value: function (r) { return r.nvat; }, cell: nvatCell },
    { key: "gini", label: "Gini", type: "num", value: function (r) { return r.gini; }, cell: function (r, td) { td.textContent = fmt(r.gini, 3); } },
    { key: "hubs", label: "Hubs", type: "text", value: function (r) { return (r.hubs || []).join(" "); }, cell: hubsCell },
    { key: "coverage", label: "Coverage", type: "num", value: function (r) { return r.coverage_share; }, cell: coverageCell },
    { key: "status", label: "Status", type: "num", value: function (r) { return STATUS_RANK[r.status]; }, cell: statusCell }
  ];

  function entryCell(r, td) {
    var e = entryOf(r);
    td.className = "entry-cell";
    var page = e.page || "";
    var name = PAGE.test(page) ? el("a", null, e.display_name) : el("span", null, e.display_name);
    if (PAGE.test(page)) name.setAttribute("href", page + "#" + encodeURIComponent(r.anchor || ""));
    td.appendChild(name);
    td.appendChild(el("span", "model", e.model));
  }
  function directionCell(r, td) {
    td.appendChild(el("span", "dir-" + (r.direction === "suppress" ? "suppress" : "reinforce"), (r.direction === "suppress" ? "− " : "+ ") + r.direction));
  }
  function gainCell(r, td) {
    td.appendChild(el("span", null, fmt(r.gain, 3, true)));
    var ci = r.gain_ci || [];
    td.appendChild(el("span", "ci", "[" + fmt(ci[0], 2, true) + ", " + fmt(ci[1], 2, true) + "]"));
  }
  function nvatCell(r, td) { td.textContent = fmt(r.nvat, 3) + " ± " + fmt(r.nvat_std, 3); }
  function hubsCell(r, td) { (r.hubs || []).forEach(function (h) { td.appendChild(el("span", "hub", h)); }); }
  function coverageCell(r, td) {
    var c = r.coverage || {};
    /* floor, so that an incomplete run never shows as 100% */
    var pct = isNum(r.coverage_share) ? Math.floor(r.coverage_share * 1000) / 10 : null;
    td.textContent = pct === null ? "–" : (pct === 100 ? "100" : pct.toFixed(1)) + "%";
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

  var state = { key: "gain", dir: -1 };
  var filters = { q: "", strategy: "", target: "", direction: "", status: "" };

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
    if (filters.strategy && COLUMNS[1].value(r) !== filters.strategy) return false;
    if (filters.target && r.target !== filters.target) return false;
    if (filters.direction && r.direction !== filters.direction) return false;
    if (filters.status && r.status !== filters.status) return false;
    if (filters.q) {
      var e = entryOf(r);
      var hay = [e.display_name, e.model, e.provider, r.strategy, r.target, r.direction, (r.hubs || []).join(" "), r.status].join(" ").toLowerCase();
      if (hay.indexOf(filters.q) < 0) return false;
    }
    return true;
  }

  function renderHead() {
    head.textContent = "";
    COLUMNS.forEach(function (col) {
      var th = el("th", col.type === "num" && col.key !== "status" ? "num" : null);
      th.setAttribute("scope", "col");
      th.setAttribute("data-key", col.key);
      th.setAttribute("aria-sort", state.key === col.key ? (state.dir > 0 ? "ascending" : "descending") : "none");
      var button = el("button", null, col.label);
      button.type = "button";
      button.addEventListener("click", function () {
        if (state.key === col.key) state.dir = -state.dir;
        else { state.key = col.key; state.dir = col.type === "num" && col.key !== "nvat" ? -1 : 1; }
        render();
      });
      th.appendChild(button);
      head.appendChild(th);
    });
  }

  function renderBody() {
    var col = COLUMNS.filter(function (c) { return c.key === state.key; })[0];
    var rows = data.rows.filter(matches).sort(compare(col, state.dir));
    body.textContent = "";
    rows.forEach(function (r) {
      var tr = el("tr");
      tr.setAttribute("data-entry", r.entry);
      COLUMNS.forEach(function (c) {
        var td = el("td", c.type === "num" && c.key !== "status" ? "num" : null);
        td.setAttribute("data-col", c.key);
        if (c.cell) c.cell(r, td); else td.textContent = c.value(r);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    count.textContent = rows.length + " of " + data.rows.length + " rows";
  }

  function render() { renderHead(); renderBody(); }

  function fillSelect(id, values) {
    var select = document.getElementById(id);
    values.forEach(function (v) { var o = el("option", null, v); o.value = v; select.appendChild(o); });
    select.addEventListener("change", function () { filters[id.slice(2)] = select.value; renderBody(); });
  }
  function distinct(fn) {
    var seen = {};
    data.rows.forEach(function (r) { seen[fn(r)] = true; });
    return Object.keys(seen).sort();
  }

  fillSelect("f-strategy", distinct(COLUMNS[1].value));
  fillSelect("f-target", distinct(function (r) { return r.target; }));
  fillSelect("f-direction", distinct(function (r) { return r.direction; }));
  fillSelect("f-status", distinct(function (r) { return r.status; }));
  var q = document.getElementById("f-q");
  q.addEventListener("input", function () { filters.q = q.value.trim().toLowerCase(); renderBody(); });
  document.getElementById("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  render();
})();
