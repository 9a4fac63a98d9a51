/* The command-center wall (一屏观全城). Everything it shows comes from small aggregated endpoints scoped to
   the logged-in user: /api/wall/kpi, /api/wall/units, /api/wall/cases (clusters or points in the map
   window), /api/wall/grids/<code>/cases and /api/cases/<id>. It refreshes itself every `refresh` seconds
   without reloading. Citizen text is always put into the page through gg.esc(). */
(function () {
  "use strict";
  var CFG = JSON.parse(document.getElementById("wall-config").textContent);
  var Z = CFG.zooms;
  var COLOUR = {green: "#52c41a", yellow: "#fadb14", orange: "#fa8c16", red: "#f5222d"};
  var COLOUR_LABEL = {green: "绿码", yellow: "黄码", orange: "橙码", red: "红码"};
  var GROUP_COLOUR = {intake: "#9aa9bd", sign: "#fadb14", handling: "#36cfc9", citizen: "#73d13d"};
  var OVERDUE = "#ff4d4f";
  var DENSITY = ["#0d2f57", "#1d5a8c", "#3f8fb8", "#f0a24a", "#ff5a3c"];
  var CENTER_LABEL = {city: "市", county: "县", township: "乡", village: "村"};

  var S = {ctx: null, map: null, prefix: "", kpi: null, units: {}, mode: "colour", crumbs: [], charts: {},
           layers: {}, grids: {}, townshipByCode: {}, countyByCode: {}, timer: null, liveSeq: 0, failures: 0};
  window.ggWall = S;  // for the operator's console and the browser tests

  function $(id) { return document.getElementById(id); }
  function rem() { return parseFloat(getComputedStyle(document.documentElement).fontSize) || 16; }
  function regionPrefix(code) {
    if (code.length === 6 && /0000$/.test(code)) { return code.slice(0, 2); }
    if (code.length === 6 && /00$/.test(code)) { return code.slice(0, 4); }
    return code;
  }
  function inScope(code) { return code.indexOf(S.prefix) === 0 || S.prefix.indexOf(code) === 0; }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function hms(d) { return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()); }
  function setNum(id, v) { var el = $(id); el.textContent = gg.fmtInt(v); el.setAttribute("data-value", v); }

  // -- login ---------------------------------------------------------------------------------------
  function showLogin(message) {
    $("wall-root").hidden = true;
    $("wall-login").hidden = false;
    $("login-error").textContent = message || "";
    $("login-user").focus();
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    gg.api("POST", "/api/login", {username: $("login-user").value, password: $("login-pass").value})
      .then(function () { $("wall-login").hidden = true; start(); })
      .catch(function (e) { $("login-error").textContent = e.status === 401 ? "用户名或密码错误" : "登录失败：" + e.message; });
  });
  $("wall-logout").addEventListener("click", function () {
    gg.api("POST", "/api/logout").then(function () { window.location.reload(); });
  });

  // -- start ---------------------------------------------------------------------------------------
  function start() {
    gg.api("GET", "/api/wall/context").then(function (ctx) {
      S.ctx = ctx;
      S.prefix = regionPrefix(ctx.region.code);
      $("wall-root").hidden = false;
      $("wall-city").textContent = (ctx.region.city || "") + "网格化社会治理指挥中心";
      $("wall-scope").textContent = ctx.region.name + " · " + ctx.user.role_label + " " + (ctx.user.display_name || ctx.user.username);
      buildMap(ctx);
      buildCharts();
      legend();
      S.crumbs = [{level: ctx.region.level, code: ctx.region.code, name: ctx.region.name, bounds: boundsOf(ctx.region.bbox)}];
      crumbs();
      refresh();
    }).catch(function (e) {
      if (e.status === 401) { showLogin(); } else { showLogin("无法加载：" + e.message); }
    });
  }

  /* The zoom the layers are chosen by: a 3840 px wall shows at zoom z+1 what a 1920 px one shows at z, so the
     thresholds (and the cluster cell) follow the screen's scale, and both walls show the same picture. */
  function ez() { return S.map.getZoom() - S.zShift; }

  function boundsOf(b) { return L.latLngBounds([b[1], b[0]], [b[3], b[2]]); }

  // -- map -----------------------------------------------------------------------------------------
  function buildMap(ctx) {
    S.zShift = Math.max(0, Math.round(Math.log(rem() / 16) / Math.LN2));
    var map = S.map = L.map("wall-map", {zoomControl: true, attributionControl: true, preferCanvas: false,
                                         zoomSnap: 0.25, minZoom: 6, maxZoom: 19});
    map.attributionControl.setPrefix("Leaflet");
    map.fitBounds(boundsOf(ctx.region.bbox), {padding: [20, 20]});
    map.createPane("gg-fill").style.zIndex = 360;
    map.createPane("gg-lines").style.zIndex = 380;
    map.createPane("gg-centers").style.zIndex = 610;
    map.createPane("gg-badges").style.zIndex = 620;
    window.ggBaseMap.attach(map, Object.assign({}, CFG.base_map, {road_color: "#6b7f99", road_weight: 1, road_opacity: 0.55}));
    S.layers.township = L.geoJSON(null, {pane: "gg-fill", style: townshipStyle, onEachFeature: onTownship}).addTo(map);
    S.layers.grid = L.geoJSON(null, {pane: "gg-fill", style: gridStyle, onEachFeature: onGrid});
    S.layers.county = L.geoJSON(null, {pane: "gg-lines", interactive: false,
                                       style: {color: "#4fc3f7", weight: 2.6, opacity: 0.95, fill: false}}).addTo(map);
    S.layers.live = L.layerGroup().addTo(map);
    S.layers.centers = L.layerGroup().addTo(map);
    S.layers.townshipCenters = L.layerGroup();
    S.layers.villageCenters = L.layerGroup();
    var county = fetchLayer("/api/layers/region?level=county&simplify=150", "county", function (f) {
      S.countyByCode[f.properties.code] = f;
    });
    var township = fetchLayer("/api/layers/region?level=township&simplify=60", "township", function (f) {
      S.townshipByCode[f.properties.code] = f;
    });
    S.boundaries = Promise.all([county, township]).then(loadGridsInView);
    map.on("moveend", function () { scheduleLive(); loadGridsInView(); centersForZoom(); });
    loadCenters(["city", "county"], null, S.layers.centers);
    loadCenters(["township"], null, S.layers.townshipCenters);
    centersForZoom();
  }

  function fetchLayer(url, key, each) {
    return gg.api("GET", url).then(function (fc) {
      var feats = fc.features.filter(function (f) { return inScope(f.properties.code); });
      feats.forEach(each);
      S.layers[key].addData({type: "FeatureCollection", features: feats});
      document.body.setAttribute("data-layer-" + key, feats.length);
    });
  }

  function townshipStyle(f) {
    var code = f.properties.code, fill = "#0f3a66", op = 0.18;
    if (S.mode === "colour") {
      var c = S.colours && S.colours[code];
      if (c && COLOUR[c]) { fill = COLOUR[c]; op = 0.30; }
    } else {
      var u = S.units.township && S.units.township[code];
      fill = DENSITY[densityClass(u)]; op = 0.55;
    }
    var here = S.crumbs.length && S.crumbs[S.crumbs.length - 1].code === code;
    return {color: here ? "#ffffff" : "#7cc4ff", weight: here ? 2.4 : 1, opacity: 0.8, dashArray: here ? null : "3 3",
            fillColor: fill, fillOpacity: S.map && ez() >= Z.grid ? op * 0.4 : op};
  }
  function densityClass(u) {
    if (!u || !u.open) { return 0; }
    var d = u.km2 ? u.open / u.km2 : 0;  // open cases per km²
    var cuts = S.densityCuts || [0.01, 0.05, 0.2, 1];
    var i = 0;
    while (i < cuts.length && d >= cuts[i]) { i++; }
    return Math.min(i, 4);
  }
  function gridStyle(f) {
    var u = S.gridUnits && S.gridUnits[f.properties.code];
    return {color: "#8fd3ff", weight: 0.7, opacity: 0.55, fillColor: u && u.overdue ? OVERDUE : "#36cfc9",
            fillOpacity: u ? Math.min(0.12 + 0.06 * u.open, 0.45) : 0.02};
  }
  function tip(layer, html) { layer.bindTooltip(html, {sticky: true, className: "gg-tip"}); }
  function onTownship(f, layer) {
    layer.options.className = "gg-township township-" + f.properties.code;
    tip(layer, function () {
      var p = f.properties, u = S.units.township && S.units.township[p.code], c = S.colours && S.colours[p.code];
      return "<b>" + gg.esc(p.name) + "</b><br>在办 " + gg.fmtInt(u ? u.open : 0) + " · 超期 " + gg.fmtInt(u ? u.overdue : 0) +
        (c ? "<br>本月" + COLOUR_LABEL[c] : "");
    });
    layer.on("click", function () { drillTownship(f.properties.code); });
  }
  function onGrid(f, layer) {
    layer.options.className = "gg-grid grid-" + f.properties.code;
    tip(layer, function () {
      var u = S.gridUnits && S.gridUnits[f.properties.code];
      return "<b>" + gg.esc(f.properties.name) + "</b><br>在办 " + gg.fmtInt(u ? u.open : 0) + " · 超期 " + gg.fmtInt(u ? u.overdue : 0);
    });
    layer.on("click", function (ev) { L.DomEvent.stop(ev); drillGrid(f.properties.code, f.properties.name, layer.getBounds()); });
  }

  // grids appear as you zoom: the grids of the townships in view, fetched once each
  function loadGridsInView() {
    if (!S.map) { return; }
    toggle(S.layers.grid, ez() >= Z.grid);
    if (ez() < Z.grid) { return; }
    var view = S.map.getBounds();
    Object.keys(S.townshipByCode).forEach(function (code) {
      if (S.grids[code]) { return; }
      var b = L.geoJSON(S.townshipByCode[code]).getBounds();
      if (!view.intersects(b)) { return; }
      S.grids[code] = gg.api("GET", "/api/layers/grid?parent=" + encodeURIComponent(code) + "&simplify=3").then(function (fc) {
        S.layers.grid.addData(fc);
        var n = 0;
        S.layers.grid.eachLayer(function () { n++; });
        document.body.setAttribute("data-layer-grid", n);
      });
    });
  }

  // 综治中心 by level: city and county always, townships from the township zoom, villages from the grid zoom
  var villageBox = null;
  function centersForZoom() {
    var z = ez();
    toggle(S.layers.townshipCenters, z >= Z.township);
    toggle(S.layers.villageCenters, z >= Z.grid);
    if (z >= Z.grid && !(villageBox && villageBox.contains(S.map.getBounds()))) {
      villageBox = S.map.getBounds().pad(0.5);
      var b = [villageBox.getWest(), villageBox.getSouth(), villageBox.getEast(), villageBox.getNorth()].map(function (v) { return v.toFixed(4); });
      S.layers.villageCenters.clearLayers();
      loadCenters(["village"], b.join(","), S.layers.villageCenters);
    }
  }
  function toggle(layer, on) {
    if (on && !S.map.hasLayer(layer)) { layer.addTo(S.map); }
    if (!on && S.map.hasLayer(layer)) { S.map.removeLayer(layer); }
  }
  function loadCenters(levels, bbox, group) {
    var url = "/api/wall/centers?levels=" + levels.join(",") + (bbox ? "&bbox=" + bbox : "");
    return gg.api("GET", url).then(function (d) {
      var size = {city: 1.9, county: 1.5, township: 1.1, village: 0.85};
      d.centers.forEach(function (c) {
        var px = Math.round(size[c.level] * rem());
        var m = L.marker([c.lat, c.lon], {pane: "gg-centers", keyboard: false,
          icon: L.divIcon({className: "", iconSize: [px, px],
            html: '<div class="gg-center ' + c.level + '" style="width:' + px + "px;height:" + px + 'px"><span>' +
                  CENTER_LABEL[c.level] + "</span></div>"})});
        tip(m, gg.esc(c.name));
        m.addTo(group);
      });
      document.body.setAttribute("data-layer-centers-" + levels.join("-"), group.getLayers().length);
    });
  }

  // -- refresh loop --------------------------------------------------------------------------------
  function refresh() {
    clearTimeout(S.timer);
    var t0 = Date.now();
    // the month's 三率 and 四色码 arrive on their own: the map and the counts never wait for them
    gg.api("GET", "/api/wall/rates").then(function (r) {
      S.rates = r;
      S.colours = {};
      r.townships.forEach(function (u) { if (u.colour) { S.colours[u.code] = u.colour; } });
      if (S.layers.township) { S.layers.township.setStyle(townshipStyle); }
      return withFonts(null).then(function () { renderRates(r); });
    }).then(function () {
      document.body.setAttribute("data-rates-ms", Date.now() - t0);
      document.body.setAttribute("data-rates", "1");
    }).catch(function () { return null; });
    Promise.all([
      gg.api("GET", "/api/wall/kpi"),
      gg.api("GET", "/api/wall/units?level=county"),
      gg.api("GET", "/api/wall/units?level=township"),
    ]).then(function (r) {
      S.kpi = r[0];
      S.units.county = index(r[1].units);
      S.units.township = index(r[2].units);
      S.densityCuts = densityCuts(r[2].units);
      S.layers.township.setStyle(townshipStyle);
      return Promise.all([withFonts(r[0]).then(function () { renderKpi(r[0]); }),
                          S.boundaries.then(function () { return updateLive(); })]);
    }).then(function () {
      S.failures = 0;
      var now = new Date();
      $("wall-updated").textContent = hms(now);
      $("wall-dot").className = "dot";
      document.body.setAttribute("data-updated", now.toISOString());
      document.body.setAttribute("data-refresh-ms", Date.now() - t0);
      document.body.setAttribute("data-ready", "1");
    }).catch(function (e) {
      if (e && e.status === 401) { showLogin("登录已过期，请重新登录"); return; }
      S.failures++;
      $("wall-dot").className = S.failures > 2 ? "dot down" : "dot stale";
      $("wall-updated").textContent = "连接中断，重试中";
    }).then(function () {
      S.timer = setTimeout(refresh, (S.failures ? 10 : CFG.refresh) * 1000);
    });
  }
  function index(rows) { var o = {}; rows.forEach(function (u) { o[u.code] = u; }); return o; }
  function densityCuts(rows) {
    var d = rows.filter(function (u) { return u.km2; }).map(function (u) { return u.open / u.km2; }).sort(function (a, b) { return a - b; });
    if (d.length < 5) { return [0.01, 0.05, 0.2, 1]; }
    return [0.2, 0.4, 0.6, 0.8].map(function (q) { return d[Math.floor(q * (d.length - 1))]; });
  }

  // -- live cases by zoom: counts per unit, then clusters, then points ------------------------------
  var liveTimer = null;
  function scheduleLive() { clearTimeout(liveTimer); liveTimer = setTimeout(updateLive, 150); }
  function bboxParam() {
    var b = S.map.getBounds();
    return [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(5); }).join(",");
  }
  function updateLive() {
    if (!S.map) { return Promise.resolve(); }
    var z = ez(), seq = ++S.liveSeq;
    S.layers.township.setStyle(townshipStyle);
    var p;
    if (z < Z.township) {
      p = Promise.resolve({kind: "county", items: values(S.units.county)});
    } else if (z < Z.grid) {
      p = Promise.resolve({kind: "township", items: values(S.units.township)});
    } else if (z < Z.cluster) {
      p = gg.api("GET", "/api/wall/units?level=grid&bbox=" + bboxParam()).then(function (d) {
        S.gridUnits = Object.assign(S.gridUnits || {}, index(d.units));
        S.layers.grid.setStyle(gridStyle);
        return {kind: "grid", items: d.units};
      });
    } else {
      p = gg.api("GET", "/api/wall/cases?bbox=" + bboxParam() + "&zoom=" + Math.max(0, Math.floor(z))).then(function (d) {
        return d.kind === "points" ? {kind: "points", items: d.points} : {kind: "clusters", items: d.clusters};
      });
    }
    return p.then(function (r) {
      if (seq !== S.liveSeq) { return; }  // a newer view won
      S.layers.live.clearLayers();
      if (r.kind === "points") { r.items.forEach(addPoint); } else { r.items.forEach(function (u) { addBadge(u, r.kind); }); }
      document.body.setAttribute("data-live-kind", r.kind);
      document.body.setAttribute("data-live-count", r.items.length);
      document.body.setAttribute("data-live-total", r.items.reduce(function (s, u) { return s + (u.open || u.n || 1); }, 0));
    });
  }
  function values(o) { return Object.keys(o || {}).map(function (k) { return o[k]; }); }

  function addBadge(u, kind) {
    var n = u.open !== undefined ? u.open : u.n;
    var base = kind === "county" ? 3.0 : kind === "township" ? 2.2 : kind === "grid" ? 1.5 : 1.9;
    var px = Math.round(rem() * Math.min(base + 0.3 * Math.sqrt(n), base * 2.2));
    var cls = "gg-badge" + (u.overdue ? " has-overdue" : "") + (u.emergency ? " has-emergency" : "");
    var label = kind === "county" || kind === "township" ? '<span class="gg-badge-label">' + gg.esc(u.name) + "</span>" : "";
    var m = L.marker([u.lat, u.lon], {pane: "gg-badges", keyboard: false, riseOnHover: true,
      icon: L.divIcon({className: "gg-badge-wrap", iconSize: [px, px],
        html: '<div class="' + cls + '" style="width:' + px + "px;height:" + px + "px;font-size:" + Math.round(px * 0.4) +
              'px" data-code="' + gg.esc(u.code || "") + '">' + gg.fmtInt(n) + "</div>" +
              (u.overdue ? '<span class="gg-over" title="已超期">超' + gg.fmtInt(u.overdue) + "</span>" : "") + label})});
    tip(m, (u.name ? "<b>" + gg.esc(u.name) + "</b><br>" : "") + "在办 " + gg.fmtInt(n) + " · 超期 " + gg.fmtInt(u.overdue) +
        (u.emergency ? " · 紧急 " + gg.fmtInt(u.emergency) : ""));
    m.on("click", function () {
      if (kind === "county") { drillCounty(u.code); }
      else if (kind === "township") { drillTownship(u.code); }
      else if (kind === "grid") { drillGrid(u.code, u.name, null); }
      else { S.map.setView([u.lat, u.lon], Math.min(S.map.getZoom() + 2, Z.point + S.zShift)); }
    });
    m.addTo(S.layers.live);
  }
  function addPoint(c) {
    var px = Math.round(rem() * (c.emergency ? 1.3 : 1.05));
    var colour = c.overdue ? OVERDUE : GROUP_COLOUR[c.group] || GROUP_COLOUR.handling;
    var m = L.marker([c.lat, c.lon], {pane: "gg-badges", keyboard: false,
      icon: L.divIcon({className: "", iconSize: [px, px],
        html: '<div class="gg-point' + (c.emergency ? " emergency" : "") + '" style="background:' + colour + '" data-case="' +
              c.id + '"></div>'})});
    m.on("click", function () { openCase(c.id); });
    m.addTo(S.layers.live);
  }

  // -- drill-down and breadcrumb ------------------------------------------------------------------
  function featureBounds(f) { return L.geoJSON(f).getBounds(); }
  function levelIndex(level) { return ["city", "county", "township", "village", "grid", "list", "case"].indexOf(level); }
  function pushCrumb(c) {
    while (S.crumbs.length > 1 && levelIndex(S.crumbs[S.crumbs.length - 1].level) >= levelIndex(c.level)) { S.crumbs.pop(); }
    if (levelIndex(S.crumbs[0].level) >= levelIndex(c.level) && S.crumbs[0].code !== c.code) { return; }
    if (S.crumbs[S.crumbs.length - 1].code !== c.code) { S.crumbs.push(c); }
    crumbs();
  }
  function crumbs() {
    var nav = $("wall-crumbs");
    nav.innerHTML = "";
    S.crumbs.forEach(function (c, i) {
      if (i) { var s = document.createElement("span"); s.className = "sep"; s.textContent = "›"; nav.appendChild(s); }
      var last = i === S.crumbs.length - 1;
      var el = document.createElement(last ? "span" : "a");
      el.textContent = c.name;
      el.className = last ? "here" : "";
      el.setAttribute("data-level", c.level);
      if (!last) { el.addEventListener("click", function () { backTo(i); }); }
      nav.appendChild(el);
    });
    document.body.setAttribute("data-crumbs", S.crumbs.length);
    if (S.layers.township && S.map) { S.layers.township.setStyle(townshipStyle); }
  }
  function backTo(i) {
    S.crumbs = S.crumbs.slice(0, i + 1);
    var c = S.crumbs[i];
    crumbs();
    if (c.level === "grid") { showGridList(c.code, c.name); } else { $("wall-drawer").hidden = true; }
    if (c.bounds) { S.map.fitBounds(c.bounds, {padding: [30, 30]}); }
  }
  function drillCounty(code) {
    var f = S.countyByCode[code];
    if (!f) { return; }
    $("wall-drawer").hidden = true;
    var b = featureBounds(f);
    pushCrumb({level: "county", code: code, name: f.properties.name, bounds: b});
    S.map.fitBounds(b, {padding: [30, 30]});
  }
  function drillTownship(code) {
    var f = S.townshipByCode[code];
    if (!f) { return; }
    var county = S.countyByCode[f.properties.parent_code];
    if (county && S.crumbs.every(function (x) { return x.code !== county.properties.code; }) &&
        levelIndex(S.crumbs[0].level) < levelIndex("county")) {
      pushCrumb({level: "county", code: county.properties.code, name: county.properties.name, bounds: featureBounds(county)});
    }
    $("wall-drawer").hidden = true;
    var b = featureBounds(f);
    pushCrumb({level: "township", code: code, name: f.properties.name, bounds: b});
    S.map.fitBounds(b, {padding: [30, 30]});
  }
  function ensureAncestors(code) {
    // county and township crumbs for a grid or case reached directly (badge or point click)
    var t = S.townshipByCode[code.slice(0, 9)], c = S.countyByCode[code.slice(0, 6)];
    if (c && levelIndex(S.crumbs[S.crumbs.length - 1].level) < levelIndex("county") && S.crumbs[0].code !== c.properties.code) {
      pushCrumb({level: "county", code: c.properties.code, name: c.properties.name, bounds: featureBounds(c)});
    }
    if (t && S.crumbs.every(function (x) { return x.code !== t.properties.code; }) && S.crumbs[0].level !== "grid") {
      pushCrumb({level: "township", code: t.properties.code, name: t.properties.name, bounds: featureBounds(t)});
    }
  }
  function drillGrid(code, name, bounds) {
    ensureAncestors(code);
    pushCrumb({level: "grid", code: code, name: name || code, bounds: bounds});
    if (bounds) { S.map.fitBounds(bounds, {padding: [60, 60], maxZoom: Z.point + S.zShift}); }
    showGridList(code, name);
  }

  function showGridList(code, name) {
    var body = $("drawer-body");
    $("wall-drawer").hidden = false;
    body.innerHTML = '<h3>' + gg.esc(name || code) + '</h3><div class="sum">加载中…</div>';
    return gg.api("GET", "/api/wall/grids/" + encodeURIComponent(code) + "/cases").then(function (d) {
      var open = d.cases.filter(function (c) { return c.is_open; }).length;
      var html = "<h3>" + gg.esc(d.grid.name) + "</h3><div class=\"sum\">在办 " + open + " 件 · 共列出 " + d.cases.length + " 件（在办在前，按紧急程度）</div>";
      html += '<ul class="case-list" id="grid-cases">';
      d.cases.forEach(function (c) {
        html += '<li data-case="' + c.id + '"><span class="t">' + (c.overdue ? '<span class="tag over">超期</span>' : "") +
          (c.emergency ? '<span class="tag emg">紧急</span>' : "") + gg.esc(c.title) + '</span><span class="m">' +
          gg.esc(c.case_no) + " · " + gg.esc(c.status_label) + " · " + gg.esc(c.category) + " · " + gg.esc(c.channel_label) +
          " · " + gg.fmtTime(c.received_at) + "</span></li>";
      });
      body.innerHTML = html + "</ul>";
      Array.prototype.forEach.call(body.querySelectorAll("li[data-case]"), function (li) {
        li.addEventListener("click", function () { openCase(Number(li.getAttribute("data-case"))); });
      });
    }).catch(function (e) { body.innerHTML = "<h3>" + gg.esc(name || code) + "</h3><div class=\"sum\">" + gg.esc(e.message) + "</div>"; });
  }

  function openCase(id) {
    var body = $("drawer-body");
    $("wall-drawer").hidden = false;
    body.innerHTML = '<div class="sum">加载中…</div>';
    return gg.api("GET", "/api/cases/" + id).then(function (c) {
      if (c.grid_code) {
        ensureAncestors(c.grid_code);
        var here = S.crumbs[S.crumbs.length - 1];
        if (here.level !== "grid" || here.code !== c.grid_code) {
          var gl = null;
          S.layers.grid.eachLayer(function (l) { if (l.feature.properties.code === c.grid_code) { gl = l; } });
          pushCrumb({level: "grid", code: c.grid_code, name: gl ? gl.feature.properties.name : c.grid_code,
                     bounds: gl ? gl.getBounds() : null});
        }
      }
      pushCrumb({level: "case", code: "case-" + c.id, name: "案件 " + c.case_no, bounds: null});
      var who = c.anonymous ? "匿名" : (gg.esc(c.reporter_name || "—") + " " + gg.esc(c.reporter_phone || "") +
                (c.pii_masked ? '<span class="masked">已脱敏</span>' : ""));
      var ev = (c.events || []).slice(-8).map(function (e) {
        var L10N = S.ctx.labels, act = L10N.actions[e.action] || e.action, to = L10N.states[e.to_state] || e.to_state;
        return "<li>" + gg.fmtTime(e.at) + " " + gg.esc(act) + (to && to !== act ? " → " + gg.esc(to) : "") +
               (e.reason ? "：" + gg.esc(e.reason) : "") + "</li>";
      }).join("");
      body.innerHTML = '<div class="case-detail" id="case-detail"><h3>' + (c.overdue ? '<span class="tag over">超期</span>' : "") +
        (c.emergency ? '<span class="tag emg">紧急</span>' : "") + gg.esc(c.title) + "</h3><dl>" +
        "<dt>编号</dt><dd>" + gg.esc(c.case_no) + "</dd>" +
        "<dt>状态</dt><dd>" + gg.esc(c.status_label) + (c.next_due_at ? "（时限 " + gg.fmtTime(c.next_due_at) + "）" : "") + "</dd>" +
        "<dt>渠道</dt><dd>" + gg.esc(c.channel_label) + " · " + gg.esc(c.kind) + "</dd>" +
        "<dt>受理时间</dt><dd>" + gg.fmtTime(c.received_at) + "</dd>" +
        "<dt>地址</dt><dd>" + gg.esc(c.address_text || "—") + "</dd>" +
        "<dt>诉求人</dt><dd>" + who + "</dd></dl>" +
        '<div class="content" id="case-content">' + gg.esc(c.content || "") + "</div>" +
        "<h3>办理经过</h3><ol>" + ev + "</ol></div>";
      if (c.lat && c.lon && ez() < Z.cluster) { S.map.setView([c.lat, c.lon], Z.point + S.zShift); }
    }).catch(function (e) { body.innerHTML = '<div class="sum">' + gg.esc(e.message) + "</div>"; });
  }
  $("drawer-close").addEventListener("click", function () {
    $("wall-drawer").hidden = true;
    while (S.crumbs.length > 1 && levelIndex(S.crumbs[S.crumbs.length - 1].level) >= levelIndex("grid")) { S.crumbs.pop(); }
    crumbs();
  });

  // -- colouring switch and legend ------------------------------------------------------------------
  Array.prototype.forEach.call(document.querySelectorAll(".mode-switch button"), function (b) {
    b.addEventListener("click", function () {
      S.mode = b.getAttribute("data-mode");
      Array.prototype.forEach.call(document.querySelectorAll(".mode-switch button"), function (x) { x.classList.toggle("on", x === b); });
      S.layers.township.setStyle(townshipStyle);
      legend();
      document.body.setAttribute("data-mode", S.mode);
    });
  });
  function legend() {
    var h = "<h3>案件状态</h3>";
    Object.keys(GROUP_COLOUR).forEach(function (g) {
      h += '<span><i style="background:' + GROUP_COLOUR[g] + '"></i>' + gg.esc((S.ctx && S.ctx.status_groups[g]) || g) + "</span>";
    });
    h += '<span><i style="background:' + OVERDUE + '"></i>已超期</span><span><i class="gg-point emergency" style="display:inline-block;width:.95rem;height:.95rem;background:#ff7875"></i>紧急</span>';
    if (S.mode === "colour") {
      h += "<h3>乡镇四色码（本月）</h3>";
      ["green", "yellow", "orange", "red"].forEach(function (c) { h += '<span><i class="sq" style="background:' + COLOUR[c] + '"></i>' + COLOUR_LABEL[c] + "</span>"; });
    } else {
      h += "<h3>在办密度（件/km²）</h3>";
      var cuts = S.densityCuts || [0.01, 0.05, 0.2, 1];
      DENSITY.forEach(function (c, i) {
        var txt = i === 0 ? "< " + cuts[0].toFixed(2) : i === 4 ? "≥ " + cuts[3].toFixed(2) : cuts[i - 1].toFixed(2) + "–" + cuts[i].toFixed(2);
        h += '<span><i class="sq" style="background:' + c + '"></i>' + txt + "</span>";
      });
    }
    h += "<h3>综治中心</h3><span>◆ 市 · 县 · 乡镇</span><span>放大显示网格</span>";
    $("wall-legend").innerHTML = h;
  }

  // -- KPI panel -----------------------------------------------------------------------------------
  function buildCharts() {
    ["channels", "rates", "trend", "categories"].forEach(function (k) {
      S.charts[k] = echarts.init($("chart-" + k), null, {renderer: "canvas"});
    });
    window.addEventListener("resize", function () {
      Object.keys(S.charts).forEach(function (k) { S.charts[k].resize(); });
      if (S.kpi) { renderKpi(S.kpi); }
      if (S.rates) { renderRates(S.rates); }
    });
  }
  function fracText(f) {  // "448/5" → "89.6" (基本满意 counts 0.8)
    var p = String(f).split("/");
    var v = p.length === 2 ? Number(p[0]) / Number(p[1]) : Number(p[0]);
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }
  // Canvas charts draw with whatever font is loaded at that moment: load the CJK subsets their labels need first.
  function withFonts(k) {
    var text = (k ? k.today.by_channel.map(function (c) { return c.label; }).join("") +
      k.top_categories.map(function (c) { return c.name; }).join("") : "") + "受理办结响应率解决率满意率0123456789%/—";
    if (!document.fonts || !document.fonts.load) { return Promise.resolve(); }
    return Promise.all([document.fonts.load('400 16px "Noto Sans SC"', text), document.fonts.load('700 16px "Noto Sans SC"', text)])
      .catch(function () { return null; });
  }
  function renderKpi(k) {
    var r = rem(), fs = Math.round(r * 0.85);
    var font = {fontFamily: "Noto Sans SC", fontSize: fs, color: "#b8d3f2"};
    $("kpi-date").textContent = k.as_of.slice(0, 10);
    setNum("kpi-today", k.today.total);
    setNum("kpi-open", k.open);
    setNum("kpi-overdue", k.overdue);
    setNum("kpi-due24", k.due_24h);
    setNum("kpi-emergency", k.emergency);
    $("kpi-emergency").parentNode.classList.toggle("alarm", k.emergency > 0);
    var bar = $("kpi-status"), total = k.by_status.reduce(function (s, g) { return s + g.count; }, 0) || 1;
    bar.innerHTML = k.by_status.map(function (g) {
      return '<div style="flex:' + Math.max(g.count, 0) + ";background:" + GROUP_COLOUR[g.group] + '" title="' + gg.esc(g.label) + '">' +
             (g.count / total > 0.12 ? gg.esc(g.label) + " " + g.count : "") + "</div>";
    }).join("");

    var ch = k.today.by_channel.slice().sort(function (a, b) { return a.count - b.count; });
    // room on the right for the largest count's label (a surge day reaches six digits)
    var widest = String(ch.length ? ch[ch.length - 1].count : 0).length;
    S.charts.channels.setOption({
      textStyle: font, animation: false,
      grid: {left: r * 6.2, right: Math.max(r * 2.4, (widest * 0.62 + 0.8) * fs), top: r * 0.2, bottom: r * 0.2},
      xAxis: {type: "value", show: false},
      yAxis: {type: "category", data: ch.map(function (c) { return c.label; }), axisLabel: {color: "#b8d3f2", fontSize: fs, fontFamily: "Noto Sans SC"},
              axisLine: {show: false}, axisTick: {show: false}},
      series: [{type: "bar", data: ch.map(function (c) { return c.count; }), barWidth: "58%",
                label: {show: true, position: "right", color: "#e8f4ff", fontSize: fs, fontFamily: "Noto Sans SC"},
                itemStyle: {color: new echarts.graphic.LinearGradient(0, 0, 1, 0, [{offset: 0, color: "#1d6fd1"}, {offset: 1, color: "#4fd6ff"}]),
                            borderRadius: [0, r * 0.2, r * 0.2, 0]}}]
    }, true);

    S.charts.trend.setOption({
      textStyle: font, animation: false,
      legend: {top: 0, right: 0, textStyle: {color: "#b8d3f2", fontSize: fs, fontFamily: "Noto Sans SC"}, itemWidth: r, itemHeight: r * 0.6},
      grid: {left: r * 2.8, right: r * 0.8, top: r * 1.8, bottom: r * 1.6},
      xAxis: {type: "category", data: k.trend.map(function (d) { return d.day.slice(5).replace("-", "/"); }),
              axisLabel: {color: "#9fbbe0", fontSize: fs}, axisLine: {lineStyle: {color: "#2b5a8a"}}},
      yAxis: {type: "value", minInterval: 1, axisLabel: {color: "#9fbbe0", fontSize: fs}, splitLine: {lineStyle: {color: "rgba(64,169,255,.12)"}}},
      series: [
        {name: "受理", type: "line", smooth: true, symbolSize: r * 0.45, data: k.trend.map(function (d) { return d.intake; }),
         lineStyle: {width: r * 0.2, color: "#4fd6ff"}, itemStyle: {color: "#4fd6ff"},
         areaStyle: {color: new echarts.graphic.LinearGradient(0, 0, 0, 1, [{offset: 0, color: "rgba(79,214,255,.35)"}, {offset: 1, color: "rgba(79,214,255,0)"}])}},
        {name: "办结", type: "line", smooth: true, symbolSize: r * 0.45, data: k.trend.map(function (d) { return d.closed; }),
         lineStyle: {width: r * 0.2, color: "#73d13d"}, itemStyle: {color: "#73d13d"}}
      ]
    }, true);

    var cats = k.top_categories.slice().reverse();
    S.charts.categories.setOption({
      textStyle: font, animation: false,
      grid: {left: r * 7.5, right: r * 3, top: r * 0.2, bottom: r * 0.2},
      xAxis: {type: "value", show: false},
      yAxis: {type: "category", data: cats.map(function (c) { return c.name; }), axisLabel: {color: "#b8d3f2", fontSize: fs, fontFamily: "Noto Sans SC"},
              axisLine: {show: false}, axisTick: {show: false}},
      series: [{type: "bar", data: cats.map(function (c) { return c.count; }), barWidth: "58%",
                label: {show: true, position: "right", color: "#e8f4ff", fontSize: fs},
                itemStyle: {color: new echarts.graphic.LinearGradient(0, 0, 1, 0, [{offset: 0, color: "#d46b08"}, {offset: 1, color: "#ffc53d"}]),
                            borderRadius: [0, r * 0.2, r * 0.2, 0]}}]
    }, true);

  }

  function renderRates(k) {
    var r = rem(), fs = Math.round(r * 0.85);
    $("kpi-month").textContent = k.month;
    var names = [["response", "响应率"], ["resolution", "解决率"], ["satisfaction", "满意率"]];
    S.charts.rates.setOption({
      animation: false,
      series: names.map(function (n, i) {
        var v = k.rates[n[0]].value;
        var col = v === null ? "#3b4a63" : v >= 0.9 ? "#52c41a" : v >= 0.8 ? "#fadb14" : v >= 0.7 ? "#fa8c16" : "#f5222d";
        return {type: "gauge", center: [(16.7 + 33.3 * i) + "%", "55%"], radius: "78%", startAngle: 210, endAngle: -30,
                min: 0, max: 100, splitNumber: 5, progress: {show: true, width: r * 0.55, itemStyle: {color: col}},
                axisLine: {lineStyle: {width: r * 0.55, color: [[1, "rgba(64,169,255,.18)"]]}},
                axisTick: {show: false}, splitLine: {show: false}, axisLabel: {show: false}, pointer: {show: false},
                title: {show: true, offsetCenter: [0, "62%"], color: "#9fbbe0", fontSize: fs, fontFamily: "Noto Sans SC"},
                detail: {valueAnimation: false, offsetCenter: [0, "5%"], fontSize: Math.round(r * 1.35), fontWeight: 700,
                         color: "#e8f4ff", fontFamily: "Noto Sans SC", formatter: v === null ? "—" : "{value}%"},
                data: [{value: v === null ? 0 : Math.round(v * 1000) / 10, name: n[1]}]};
      })
    }, true);
    $("kpi-rates").innerHTML = names.map(function (n) {
      var x = k.rates[n[0]];
      return '<span data-rate="' + n[0] + '" data-num="' + gg.esc(x.numerator) + '" data-den="' + x.denominator + '">' +
             gg.esc(fracText(x.numerator)) + " / " + x.denominator + "</span>";
    }).join("");

    var warn = $("kpi-warn");
    if (!k.warn.length) {
      warn.innerHTML = '<li class="none">本月暂无红码、橙码乡镇（街道）</li>';
    } else {
      warn.innerHTML = k.warn.slice(0, 12).map(function (u) {
        return '<li data-code="' + gg.esc(u.code) + '"><span class="code ' + u.colour + '">' + gg.esc(u.colour_label) + "</span>" +
               '<span class="name">' + gg.esc(u.name) + '</span><span class="score">' + (u.composite === null ? "—" : u.composite.toFixed(1) + "分") +
               '</span><span class="why">' + gg.esc(u.reason) + "</span></li>";
      }).join("");
      Array.prototype.forEach.call(warn.querySelectorAll("li[data-code]"), function (li) {
        li.addEventListener("click", function () { drillTownship(li.getAttribute("data-code")); });
      });
    }
  }

  // -- clock ---------------------------------------------------------------------------------------
  setInterval(function () { $("wall-clock").textContent = hms(new Date()); }, 1000);
  $("wall-clock").textContent = hms(new Date());

  // -- go ------------------------------------------------------------------------------------------
  if (CFG.logged_in) { start(); } else { showLogin(); }
})();
