// wearflow dashboard: refresh a page's figures from its JSON without reloading it.
// No dependencies. Elements with data-live="a.b" get that value of the JSON as text;
// a tbody with data-live-rows="list" data-live-cols="x,y" is rebuilt from that list
// (data-live-link="col|/path/{field}" makes a column a link). Text only, never HTML.
(function () {
  "use strict";
  var root = document.querySelector("[data-live-src]");
  if (!root) { return; }
  var src = root.getAttribute("data-live-src");
  var every = Number(root.getAttribute("data-live-every") || 2000);
  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? undefined : o[k]; }, obj);
  }
  function cell(row, col, link) {
    var td = document.createElement("td");
    var value = get(row, col);
    var text = value == null ? "" : String(value);
    if (link && link[0] === col) {
      var a = document.createElement("a");
      a.href = link[1].replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(get(row, k)); });
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    return td;
  }
  function render(data) {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      var value = get(data, el.getAttribute("data-live"));
      el.textContent = value == null ? (el.getAttribute("data-live-empty") || "0") : String(value);
    });
    document.querySelectorAll("tbody[data-live-rows]").forEach(function (body) {
      var rows = get(data, body.getAttribute("data-live-rows")) || [];
      var cols = body.getAttribute("data-live-cols").split(",");
      var link = (body.getAttribute("data-live-link") || "").split("|");
      var max = Number(body.getAttribute("data-live-max") || 50);
      body.replaceChildren.apply(body, rows.slice(0, max).map(function (row) {
        var tr = document.createElement("tr");
        cols.forEach(function (col) { tr.appendChild(cell(row, col, link)); });
        return tr;
      }));
    });
  }
  function tick() {
    fetch(src, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { render(data); } })
      .catch(function () { /* the server restarts: the next tick tries again */ })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
