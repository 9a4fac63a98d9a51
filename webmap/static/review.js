/* Township review page: period × unit × category → heat map with weekly change, 类案, per-grid table, charts. */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var esc = gg.esc;
  var map = L.map("map", {preferCanvas: true, zoomControl: true, attributionControl: false});
  map.setView([43.17, 124.35], 9);
  var outline = L.geoJSON(null, {style: {color: "#1f4e79", weight: 1, fill: false}}).addTo(map);
  var heat = L.heatLayer([], {radius: 18, blur: 16, maxZoom: 15, minOpacity: 0.35}).addTo(map);
  var clusterLayer = L.layerGroup().addTo(map);
  var state = {points: [], weeks: [], playing: null};
  var trend = echarts.init($("trend")), cats = echarts.init($("cats"));

  function query() {
    var q = ["unit=" + encodeURIComponent($("unit").value)];
    if ($("from").value && $("to").value) {
      q.push("from=" + $("from").value, "to=" + $("to").value);
    } else {
      q.push("month=" + ($("month").value || ""));
    }
    if ($("category").value) { q.push("category=" + encodeURIComponent($("category").value)); }
    return q.join("&");
  }
  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%"; }
  function delta(a, b, rate) {
    if (a === null || b === null || a === undefined || b === undefined) { return '<span class="flat">–</span>'; }
    var d = a - b;
    if (rate) {
      var cls = d > 0.0005 ? "rate-up" : d < -0.0005 ? "rate-down" : "flat";
      return '<span class="' + cls + '">' + (d >= 0 ? "+" : "") + (100 * d).toFixed(1) + "</span>";
    }
    var c2 = d > 0 ? "up" : d < 0 ? "down" : "flat";
    return '<span class="' + c2 + '">' + (d > 0 ? "+" : "") + d + "</span>";
  }
  function status(msg) { $("status").textContent = msg; }

  function renderSummary(s) {
    var t = s.totals, r = t.rates, p = t.prev_rates;
    $("kpis").innerHTML = [
      ["件数", gg.fmtInt(t.received), delta(t.received, t.prev_received, false) + " 较上期"],
      ["响应率", pct(r.response), delta(r.response, p.response, true) + " 个百分点"],
      ["解决率", pct(r.resolution), delta(r.resolution, p.resolution, true) + " 个百分点"],
      ["满意率", pct(r.satisfaction), delta(r.satisfaction, p.satisfaction, true) + " 个百分点"]
    ].map(function (k) {
      return '<div class="rv-kpi"><div class="k">' + k[0] + '</div><div class="v">' + k[1] +
        '</div><div class="d">' + k[2] + "</div></div>";
    }).join("");
    var c = s.colour;
    $("colour").innerHTML = '<span class="badge ' + esc(c.code || "none") + '">' + esc(c.label) + "码</span>" +
      esc(s.unit.name) + " " + esc(c.month) + (c.rank ? "（第 " + c.rank + " / " + c.of + " 名，" : "（") + esc(c.source) + "）：" +
      esc(c.reasons.join("；"));
    var rows = s.grids.slice().sort(function (a, b) { return b.received - a.received || (a.grid_code < b.grid_code ? -1 : 1); });
    $("grids").tBodies[0].innerHTML = rows.map(function (g) {
      var gr = g.rates, gp = g.prev_rates;
      return "<tr data-grid=\"" + esc(g.grid_code) + "\"><td>" + esc(g.grid_name) + " <small>" + esc(g.grid_code) +
        "</small></td><td>" + esc(g.village_name) + "</td><td class=\"n\">" + g.received + "</td><td>" +
        g.prev_received + "</td><td>" + delta(g.received, g.prev_received, false) + "</td><td>" + pct(gr.response) +
        "</td><td>" + pct(gr.resolution) + "</td><td>" + pct(gr.satisfaction) + "</td><td>" +
        (gr.composite === null ? "–" : gr.composite.toFixed(1)) + "</td><td>" +
        delta(gr.composite === null ? null : gr.composite / 100, gp.composite === null ? null : gp.composite / 100, true) +
        "</td></tr>";
    }).join("");
    document.body.setAttribute("data-review-grids", String(rows.length));
    document.body.setAttribute("data-review-total", String(t.received));
    trend.setOption({
      textStyle: {fontFamily: "Noto Sans SC"}, grid: {left: 40, right: 12, top: 30, bottom: 24},
      title: {text: "逐周件数", textStyle: {fontSize: 14}}, tooltip: {trigger: "axis"},
      legend: {data: ["受理", "办结"], right: 0, top: 0},
      xAxis: {type: "category", data: s.weeks.map(function (w) { return w.week.slice(5); })},
      yAxis: {type: "value", minInterval: 1},
      series: [{name: "受理", type: "line", data: s.weeks.map(function (w) { return w.received; }), smooth: true},
               {name: "办结", type: "line", data: s.weeks.map(function (w) { return w.closed; }), smooth: true}]
    }, true);
    var top = s.categories.slice(0, 8).reverse();
    cats.setOption({
      textStyle: {fontFamily: "Noto Sans SC"}, grid: {left: 96, right: 16, top: 30, bottom: 20},
      title: {text: "主要类别", textStyle: {fontSize: 14}}, tooltip: {},
      xAxis: {type: "value", minInterval: 1},
      yAxis: {type: "category", data: top.map(function (c) { return c.name; })},
      series: [{type: "bar", data: top.map(function (c) { return c.received; }), itemStyle: {color: "#1f4e79"}}]
    }, true);
  }

  function showWeek(i) {
    var pts = i === 0 ? state.points : state.points.filter(function (p) { return p[2] === i - 1; });
    heat.setLatLngs(pts.map(function (p) { return [p[0], p[1], 1]; }));
    $("weeklabel").textContent = i === 0 ? "全部（" + state.points.length + " 件）" :
      "第" + i + "周 " + state.weeks[i - 1] + " 起（" + pts.length + " 件）";
    document.body.setAttribute("data-heat-points", String(pts.length));
  }

  function renderClusters(cl) {
    clusterLayer.clearLayers();
    $("clusters").innerHTML = cl.clusters.map(function (c, i) {
      L.circleMarker([c.centroid[1], c.centroid[0]], {radius: 8 + Math.min(20, Math.sqrt(c.count) * 2), color: "#c0392b",
        weight: 2, fillOpacity: 0.15}).bindTooltip(esc(c.category_name) + " " + c.count + " 件").addTo(clusterLayer);
      return '<li><a data-i="' + i + '"><span class="cl-count">' + c.count + " 件</span> " + esc(c.category_name) +
        " · 半径约 " + Math.round(c.radius_m) + " 米 · " + esc(c.first_at.slice(0, 10)) + " 至 " +
        esc(c.last_at.slice(0, 10)) + "</a></li>";
    }).join("") || "<li>本期无类案（同类诉求 5 件以上、300 米内）</li>";
    document.body.setAttribute("data-clusters", String(cl.clusters.length));
    Array.prototype.forEach.call($("clusters").querySelectorAll("a[data-i]"), function (a) {
      a.addEventListener("click", function () {
        var c = cl.clusters[Number(a.getAttribute("data-i"))];
        map.fitBounds([[c.bbox[1], c.bbox[0]], [c.bbox[3], c.bbox[2]]], {maxZoom: 16});
        gg.api("GET", "/api/review/cases?ids=" + c.case_ids.slice(0, 50).join(",")).then(function (d) {
          $("clustercases").innerHTML = "<ul>" + d.cases.map(function (k) {
            return "<li>" + esc(k.case_no) + " " + esc(k.title) + " <small>" + esc(k.address_text || "") + "</small></li>";
          }).join("") + "</ul>" + (c.count > d.cases.length ? "<p>共 " + c.count + " 件，列出前 " + d.cases.length + " 件</p>" : "");
          document.body.setAttribute("data-cluster-cases", String(d.cases.length));
        });
      });
    });
  }

  function loadOutline(unit) {
    var url = unit.length >= 9 ? "/api/layers/grid?simplify=2&parent=" + unit :
      "/api/layers/region?level=township&simplify=10&parent=" + unit;
    return gg.api("GET", url).then(function (fc) {
      outline.clearLayers();
      outline.addData(fc);
      if (fc.features.length) { map.fitBounds(outline.getBounds(), {padding: [10, 10]}); }
    });
  }

  function load() {
    var q = query();
    status("加载中…");
    $("xlsx").setAttribute("href", "/api/review/export.xlsx?" + q);
    document.body.removeAttribute("data-ready");
    return Promise.all([
      gg.api("GET", "/api/review?" + q).then(renderSummary),
      gg.api("GET", "/api/review/heat?" + q).then(function (h) {
        state.points = h.points; state.weeks = h.weeks;
        $("week").max = String(h.weeks.length); $("week").value = "0"; showWeek(0);
      }),
      gg.api("GET", "/api/review/clusters?" + q).then(renderClusters),
      loadOutline($("unit").value),
      loadLists()
    ]).then(function () {
      map.invalidateSize();   // the panels have their final size now
      if (outline.getLayers().length) { map.fitBounds(outline.getBounds(), {padding: [10, 10]}); }
      status("已更新 " + new Date().toLocaleTimeString("zh-CN"));
      document.body.setAttribute("data-ready", "1");
    }, function (e) { status("出错：" + e.message); });
  }

  // 四色码整改 (the consequence of each colour, seed 004), 领导包案 and 信访积案 of the selected unit
  function inUnit(r, unit) {
    return [r.county_code, r.township_code, r.village_code].indexOf(unit) >= 0;
  }
  function today() { return new Date().toISOString().slice(0, 10); }
  function renderTasks(tasks, unit) {
    // the unit's own task first, then its sub-units' (red first, as the API orders them)
    var rows = tasks.filter(function (t) { return t.unit_code.indexOf(unit) === 0; }).sort(function (a, b) {
      return (b.unit_code === unit) - (a.unit_code === unit);
    });
    var open = rows.filter(function (t) { return !t.done_at; }).length;
    $("n-tasks").textContent = open ? String(open) : "";
    $("tasks").tBodies[0].innerHTML = rows.map(function (t) {
      var late = !t.done_at && t.due_date < today();
      return "<tr><td>" + esc(t.month) + "</td><td>" + esc(t.unit_name) + "</td><td><span class=\"badge " +
        esc(t.colour) + "\">" + esc(t.colour_label) + "码</span></td><td>" + esc(t.consequence) + "</td><td>" +
        esc(t.reason || "") + "</td><td" + (late ? ' class="late"' : "") + ">" + esc(t.due_date) +
        (late ? " 已逾期" : "") + "</td><td>" + (t.done_at ? '<span class="done">已落实 ' + esc(t.done_at.slice(0, 10)) +
        "</span>" : '<button type="button" data-task="' + t.id + '">标记落实</button>') + "</td></tr>";
    }).join("") || '<tr><td colspan="7">本单位暂无四色码整改任务（月度指标发布后生成）</td></tr>';
    document.body.setAttribute("data-tasks", String(rows.length));
  }
  function caseCells(k) {
    return "<td>" + esc(k.case_no) + "</td><td>" + esc(k.title) + "</td>";
  }
  function renderPackages(cases, unit) {
    var rows = cases.filter(function (k) { return inUnit(k, unit); });
    $("n-packages").textContent = rows.length ? String(rows.length) : "";
    $("packages").tBodies[0].innerHTML = rows.map(function (k) {
      var p = k.package, late = k.status !== "closed" && p.target_date < today();
      return "<tr>" + caseCells(k) + "<td>" + esc(p.leader) + "</td><td>" + esc(p.unit) + "</td><td" +
        (late ? ' class="late"' : "") + ">" + esc(p.target_date) + "</td><td>" + esc(p.standard || "") + "</td><td>" +
        esc(k.status_label || k.status) + "</td></tr>";
    }).join("") || '<tr><td colspan="7">本单位暂无领导包案</td></tr>';
    document.body.setAttribute("data-packages", String(rows.length));
  }
  function renderBacklog(cases, unit) {
    var rows = cases.filter(function (k) { return inUnit(k, unit); }), now = Date.now();
    $("n-backlog").textContent = rows.length ? String(rows.length) : "";
    $("backlog").tBodies[0].innerHTML = rows.map(function (k) {
      var days = Math.floor((now - new Date(k.received_at).getTime()) / 864e5);
      return "<tr>" + caseCells(k) + "<td>" + esc(k.channel_label || k.channel) + "</td><td>" +
        esc(k.received_at.slice(0, 10)) + '</td><td class="late">' + days + " 天</td><td>" +
        esc(k.status_label || k.status) + "</td><td>" + (k.package ? esc(k.package.leader) :
        '未包案 <button type="button" data-package="' + k.id + '" data-no="' + esc(k.case_no) + '">领导包案</button>') +
        "</td></tr>";
    }).join("") || '<tr><td colspan="7">本单位信访积案已清零</td></tr>';
    document.body.setAttribute("data-backlog", String(rows.length));
  }
  function loadLists() {
    var unit = $("unit").value;
    return Promise.all([
      // the consequences set when the selected month was published (or every open one for a date range)
      gg.api("GET", "/api/colour-tasks?" + ($("from").value && $("to").value ? "open=1" : "month=" + $("month").value))
        .then(function (d) { state.tasks = d.tasks; renderTasks(d.tasks, unit); }),
      gg.api("GET", "/api/cases?register=" + encodeURIComponent("领导包案") + "&limit=1000&order=newest")
        .then(function (d) { renderPackages(d.cases, unit); }),
      gg.api("GET", "/api/cases?register=" + encodeURIComponent("积案") + "&limit=1000&order=newest")
        .then(function (d) { renderBacklog(d.cases, unit); })
    ]);
  }
  function showTab(name) {
    Array.prototype.forEach.call(document.querySelectorAll(".rv-tabs button"), function (b) {
      var on = b.getAttribute("data-tab") === name;
      b.setAttribute("aria-selected", on ? "true" : "false");
      $(b.getAttribute("data-tab")).hidden = !on;
    });
  }
  document.querySelector(".rv-tabs").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-tab]");
    if (b) { showTab(b.getAttribute("data-tab")); }
  });
  $("tasks").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-task]");
    if (!b) { return; }
    b.disabled = true;
    gg.api("POST", "/api/colour-tasks/" + b.getAttribute("data-task") + "/done").then(function (t) {
      state.tasks = state.tasks.map(function (x) { return x.id === t.id ? t : x; });
      renderTasks(state.tasks, $("unit").value);
      status("已标记落实：" + t.unit_name + " " + t.month + " " + t.consequence);
    }, function (e) { b.disabled = false; status("出错：" + e.message); });
  });

  // 领导包案 from the 积案 list (seeds 002/004): leader, responsible unit, 一案一策, standard, target date
  var pkgCase = null;
  $("backlog").addEventListener("click", function (ev) {
    var b = ev.target.closest("button[data-package]");
    if (!b) { return; }
    pkgCase = b.getAttribute("data-package");
    $("pkgcase").textContent = b.getAttribute("data-no");
    $("pkgerr").textContent = "";
    var d = new Date(); d.setDate(d.getDate() + 30);
    $("pkgtarget").value = d.toISOString().slice(0, 10);
    $("pkgdlg").showModal();
    $("pkgleader").focus();
  });
  $("pkgcancel").addEventListener("click", function () { $("pkgdlg").close(); });
  $("pkgform").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("pkgsave").disabled = true;
    gg.api("POST", "/api/cases/" + pkgCase + "/actions/package", {
      leader: $("pkgleader").value, unit: $("pkgunit").value, plan: $("pkgplan").value,
      standard: $("pkgstandard").value, target_date: $("pkgtarget").value, reason: "积案领导包案"
    }).then(function () {
      $("pkgsave").disabled = false;
      $("pkgdlg").close();
      status("已包案：" + $("pkgcase").textContent + "，包案领导 " + $("pkgleader").value);
      loadLists();
    }, function (e) {
      $("pkgsave").disabled = false;
      $("pkgerr").textContent = e.status === 403 ? "当前账号不能指定包案领导（县级以上综治中心）" : e.message;
    });
  });

  function lastMonth() {
    var d = new Date(); d.setDate(1); d.setMonth(d.getMonth() - 1);
    return d.getFullYear() + "-" + ("0" + (d.getMonth() + 1)).slice(-2);
  }

  function start() {
    return gg.api("GET", "/api/review/units").then(function (u) {
      if (!u.units.length) { status("当前账号无研判权限（仅限各级综治中心）"); return; }
      $("unit").innerHTML = u.units.map(function (x) {
        var pad = x.level === "county" ? "" : x.level === "township" ? "　" : "　　";
        return '<option value="' + esc(x.code) + '">' + pad + esc(x.name) + "</option>";
      }).join("");
      $("unit").value = u.default_unit || u.units[0].code;
      $("category").innerHTML = '<option value="">全部类别</option>' + u.categories.map(function (c) {
        return '<option value="' + esc(c.code) + '">' + esc(c.name) + "</option>";
      }).join("");
      var params = new URLSearchParams(location.search);
      if (params.get("unit")) { $("unit").value = params.get("unit"); }
      $("month").value = params.get("month") || lastMonth();
      if (params.get("from")) { $("from").value = params.get("from"); $("to").value = params.get("to") || ""; }
      if (params.get("category")) { $("category").value = params.get("category"); }
      return load();
    }, function (e) {
      if (e.status === 401) { $("login").hidden = false; $("username").focus(); }
      else if (e.status === 403) { status("当前账号无研判权限（仅限各级综治中心）"); }
      else { status("出错：" + e.message); }
    });
  }

  $("loginform").addEventListener("submit", function (ev) {
    ev.preventDefault();
    gg.api("POST", "/api/login", {username: $("username").value, password: $("password").value}).then(function () {
      $("login").hidden = true; start();
    }, function (e) { $("loginerr").textContent = e.status === 429 ? "尝试次数过多，请稍后再试" : "用户名或密码错误"; });
  });
  $("go").addEventListener("click", load);
  $("month").addEventListener("change", function () { $("from").value = ""; $("to").value = ""; });
  $("week").addEventListener("input", function () { showWeek(Number($("week").value)); });
  $("play").addEventListener("click", function () {
    if (state.playing) { clearInterval(state.playing); state.playing = null; $("play").textContent = "▶"; return; }
    $("play").textContent = "❚❚";
    state.playing = setInterval(function () {
      var n = (Number($("week").value) + 1) % (state.weeks.length + 1);
      $("week").value = String(n); showWeek(n);
    }, 1200);
  });
  window.addEventListener("resize", function () { trend.resize(); cats.resize(); });
  start();
})();
