// webd's activity page: the event stream /admin/events drives the counters, the
// connections, the queue figures, the hour's chart and the log lines. No library, no
// build step; every text goes in through textContent.
"use strict";
(function () {
  var SVGNS = "http://www.w3.org/2000/svg";
  var SERIES = ["accepted", "delivered", "deferred", "bounced"];
  var KEEP = 1000;
  var SHOW = 300;
  var lines = [];
  var $ = function (id) { return document.getElementById(id); };
  var set = function (id, v) { var e = $(id); if (e) { e.textContent = String(v); } };

  function age(s) {
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min"; }
    if (s < 172800) { return Math.floor(s / 3600) + " h"; }
    return Math.floor(s / 86400) + " d";
  }

  function el(name, attrs, text) {
    var e = document.createElementNS(SVGNS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function chart(d) {
    var svg = $("chart");
    var W = 640, H = 220, L = 36, R = 8, T = 10, B = 24;
    var idx = SERIES.map(function (k) { return d.kinds.indexOf(k) + 1; });
    var max = 1;
    d.minutes.forEach(function (m) {
      idx.forEach(function (i) { if (m[i] > max) { max = m[i]; } });
    });
    var n = d.minutes.length;
    var x = function (j) { return L + (W - L - R) * j / Math.max(n - 1, 1); };
    var y = function (v) { return T + (H - T - B) * (1 - v / max); };
    while (svg.firstChild) { svg.removeChild(svg.firstChild); }
    svg.appendChild(el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, "class": "axis" }));
    svg.appendChild(el("line", { x1: L, y1: T, x2: L, y2: H - B, "class": "axis" }));
    svg.appendChild(el("text", { x: L - 4, y: T + 10, "text-anchor": "end" }, String(max)));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end" }, "0"));
    svg.appendChild(el("text", { x: L, y: H - 6 }, "−60 min"));
    svg.appendChild(el("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "now"));
    idx.forEach(function (i, s) {
      var pts = d.minutes.map(function (m, j) { return x(j).toFixed(1) + "," + y(m[i]).toFixed(1); });
      svg.appendChild(el("polyline", { points: pts.join(" "), "class": "s" + s }));
    });
  }

  function stats(d) {
    var last = d.minutes[d.minutes.length - 1];
    d.kinds.forEach(function (k, i) {
      var hour = 0;
      d.minutes.forEach(function (m) { hour += m[i + 1]; });
      set("m-" + k, last[i + 1]);
      set("n-" + k, hour);
    });
    if (d.queue) {
      set("q-messages", d.queue.messages);
      set("q-oldest", d.queue.messages ? age(d.queue.oldest) : "—");
    } else {
      set("q-messages", "?");
      set("q-oldest", "unknown");
    }
    var body = $("connections").tBodies[0];
    while (body.firstChild) { body.removeChild(body.firstChild); }
    d.connections.forEach(function (c) {
      var tr = document.createElement("tr");
      var a = document.createElement("td");
      var b = document.createElement("td");
      a.textContent = c[0];
      b.textContent = String(c[1]);
      b.id = "conn-" + c[0];
      tr.appendChild(a);
      tr.appendChild(b);
      body.appendChild(tr);
    });
    chart(d);
    set("live-status", "Live · updated " + new Date(d.now * 1000).toLocaleTimeString());
  }

  function filterText() { return $("log-filter").value.trim().toLowerCase(); }

  function matches(l, f) {
    return !f || (l.src + " " + l.line).toLowerCase().indexOf(f) >= 0;
  }

  function item(l) {
    var li = document.createElement("li");
    var t = document.createElement("time");
    var s = document.createElement("span");
    t.textContent = new Date(l.t * 1000).toLocaleTimeString();
    s.className = "src";
    s.textContent = l.src;
    li.appendChild(t);
    li.appendChild(s);
    li.appendChild(document.createTextNode(l.line));
    return li;
  }

  function renderLog() {
    var f = filterText();
    var ol = $("log");
    while (ol.firstChild) { ol.removeChild(ol.firstChild); }
    for (var i = lines.length - 1, shown = 0; i >= 0 && shown < SHOW; i--) {
      if (matches(lines[i], f)) { ol.appendChild(item(lines[i])); shown++; }
    }
  }

  function addLine(l) {
    lines.push(l);
    if (lines.length > KEEP) { lines.shift(); }
    if (matches(l, filterText())) {
      var ol = $("log");
      ol.insertBefore(item(l), ol.firstChild);
      while (ol.children.length > SHOW) { ol.removeChild(ol.lastChild); }
    }
  }

  $("log-filter").addEventListener("input", renderLog);
  var es = new EventSource("/admin/events");
  es.addEventListener("stats", function (e) { stats(JSON.parse(e.data)); });
  es.addEventListener("log", function (e) { addLine(JSON.parse(e.data)); });
  es.addEventListener("error", function () { set("live-status", "Reconnecting…"); });
})();
