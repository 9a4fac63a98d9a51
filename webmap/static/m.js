/* The grid officer's phone page (/m): log in, my cases most urgent first with the countdown, case detail
   with its map, history and deadlines, actions with optimistic concurrency, 巡查上报 with GPS and photos.
   Every request goes through gg.api (CSRF header); every citizen text goes through gg.esc. */
(function () {
  "use strict";
  var L_ = JSON.parse(document.getElementById("m-app").getAttribute("data-labels"));
  var $ = function (id) { return document.getElementById(id); };
  var esc = gg.esc;
  var state = {
    me: null, counts: null, cases: [], filter: "open", closed: null, listAt: null,
    bundle: null,          // the case shown in detail: {case, actions, attachments, may_attach}
    drafts: {},            // typed text per case and action, kept across errors and reloads
    openForm: null,        // action whose form is open
    stale: null,           // message of a refused stale version
    report: null           // the patrol report form: {key, photos: [File], lon, lat, acc}
  };
  var GROUPS = [["pending_sign", "待签收"], ["handling", "办理中"], ["due_soon", "即将超期"], ["overdue", "已超期"]];
  var CHIPS = [["open", "全部在办"], ["dispatched", "待签收"], ["working", "办理中"], ["replied", "待评价"],
               ["received", "待受理"], ["closed", "已办结"]];
  var HANDLING = {signed: 1, handling: 1, reopened: 1};
  var ACTION_HELP = {
    sign: "确认接收本件，开始计算办理时限。",
    start: "开始现场办理。",
    "return": "本件不属于本网格或无法办理时退回，须写明理由。",
    progress: "记录办理进展（走访、协调、整改情况）。",
    request_extension: "申请延长答复期限，须写明理由，由乡镇（街道）审批。",
    reply: "向群众答复办理结果。",
    escalate: "本级无法解决时上报上一级（村→乡镇→县），须写明理由。"
  };

  // -- small helpers ------------------------------------------------------------------------------
  function toast(msg) {
    var t = $("m-toast");
    t.textContent = msg; t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(function () { t.hidden = true; }, 3500);
  }
  function show(view, title, back) {
    ["v-login", "v-list", "v-case", "v-report"].forEach(function (v) { $(v).hidden = v !== view; });
    $("m-title").textContent = title;
    $("m-back").hidden = !back;
    $("m-logout").hidden = view === "v-login" || !!back;
    window.scrollTo(0, 0);
  }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function shortTime(iso) {
    if (!iso) { return "–"; }
    var d = new Date(iso);
    return pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function duration(hours) {
    var h = Math.abs(hours);
    if (h < 1) { return Math.max(1, Math.round(h * 60)) + " 分钟"; }
    if (h < 48) { return Math.floor(h) + " 小时" + (h % 1 >= 0.1 ? " " + Math.round((h % 1) * 60) + " 分" : ""); }
    return Math.floor(h / 24) + " 天 " + Math.round(h % 24) + " 小时";
  }
  // The countdown of a case from the JSON the API already computes (next milestone, due, overdue, hours left).
  function urgency(c) {
    if (!c.next_due_at) {
      var waiting = {received: "等待受理派单", accepted: "等待受理派单", replied: "已答复，待群众评价",
                     evaluated: "已评价，待办结", closed: "已办结"}[c.status];
      var other = !waiting && (c.handle_due_at || c.reply_due_at);  // e.g. a 信访 case: its 办结 deadline
      return {cls: "u-none", text: waiting || (other ? "办结时限 " + shortTime(other) : "无办理时限"), sub: ""};
    }
    var hrs = c.remaining_hours;
    if (c.next_due_at) { hrs = (new Date(c.next_due_at) - Date.now()) / 3600000; }
    var ms = L_.milestones[c.next_milestone] || c.next_milestone;
    var sub = ms + "截止 " + shortTime(c.next_due_at);
    if (hrs < 0) { return {cls: "u-overdue", text: ms + "已超期 " + duration(hrs), sub: sub}; }
    return {cls: hrs < 24 ? "u-soon" : "u-ok", text: ms + "剩余 " + duration(hrs), sub: sub};
  }
  function stateLabel(s) { return L_.states[s] || s; }
  function errText(e) {
    if (e && e.status === 0) { return "网络连接失败，请检查网络后重试"; }
    if (e && e.status === 401) { return "登录已过期，请重新登录"; }
    if (e && e.status === 403) { return "无权执行此操作：" + (e.message || ""); }
    if (e && e.status === 413) { return e.message || "上传内容过大"; }
    return (e && e.message) || "操作失败，请稍后重试";
  }
  function api(method, url, body) {
    return gg.api(method, url, body).catch(function (e) {
      if (e instanceof TypeError) { var n = new Error("网络连接失败"); n.status = 0; throw n; }
      if (e.status === 401 && url !== "/api/login") { showLogin(); }
      throw e;
    });
  }

  // -- login --------------------------------------------------------------------------------------
  function showLogin(msg) {
    state.me = null;
    show("v-login", "网格员工作台", false);
    $("login-error").hidden = !msg;
    if (msg) { $("login-error").textContent = msg; }
  }
  $("login-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var u = $("login-user").value.trim(), p = $("login-pass").value;
    if (!u || !p) { $("login-error").textContent = "请输入用户名和密码"; $("login-error").hidden = false; return; }
    $("login-submit").disabled = true;
    api("POST", "/api/login", {username: u, password: p}).then(function () {
      $("login-pass").value = "";
      return start();
    }).catch(function (e) {
      $("login-error").textContent = e.status === 401 ? "用户名或密码错误" : errText(e);
      $("login-error").hidden = false;
    }).then(function () { $("login-submit").disabled = false; });
  });
  $("m-logout").addEventListener("click", function () {
    api("POST", "/api/logout", {}).catch(function () {}).then(function () { location.hash = ""; showLogin(); });
  });

  function start() {
    return api("GET", "/api/me").then(function (r) {
      state.me = r.user;
      route();
    }).catch(function (e) { if (e.status !== 401) { showLogin(errText(e)); } });
  }

  // -- list ---------------------------------------------------------------------------------------
  function loadList() {
    return Promise.all([api("GET", "/api/cases/counts"), api("GET", "/api/cases?open=1&limit=500")]).then(function (r) {
      state.counts = r[0]; state.listAt = new Date();
      // Cases with a running deadline first, nearest first (the server's urgency order within); cases that
      // wait for dispatch or for the citizen after them.
      state.cases = r[1].cases.map(function (c, i) { return [c, i]; }).sort(function (a, b) {
        var da = a[0].next_due_at ? Date.parse(a[0].next_due_at) : Infinity;
        var db = b[0].next_due_at ? Date.parse(b[0].next_due_at) : Infinity;
        return da === db ? a[1] - b[1] : da - db;
      }).map(function (x) { return x[0]; });
      renderList();
    }).catch(function (e) { toast(errText(e)); });
  }
  function inFilter(c) {
    var f = state.filter;
    if (f === "open") { return true; }
    if (f === "working") { return !!HANDLING[c.status]; }
    if (f === "pending_sign") { return c.status === "dispatched"; }
    if (f === "handling") { return !!HANDLING[c.status]; }
    if (f === "due_soon") { return c.next_due_at && !c.overdue && c.remaining_hours < (state.counts.soon_hours || 24); }
    if (f === "overdue") { return !!c.overdue; }
    if (f === "replied") { return c.status === "replied" || c.status === "evaluated"; }
    if (f === "received") { return c.status === "received" || c.status === "accepted"; }
    return c.status === f;
  }
  function renderList() {
    var me = state.me, cnt = state.counts.counts;
    $("m-who").innerHTML = "<b>" + esc(me.display_name || me.username) + '</b><span id="m-grid-name">' +
      esc(me.role_label) + (me.grid_code ? " · " + esc(me.grid_code) : "") + "</span>";
    if (me.grid_code) {
      gridLayer(me.region_code).then(function (fc) {
        var f = fc && fc.features.filter(function (x) { return x.properties.code === me.grid_code; })[0];
        if (f && $("m-grid-name")) { $("m-grid-name").textContent = me.role_label + " · " + f.properties.name; }
      }).catch(function () {});
    }
    $("m-counters").innerHTML = GROUPS.map(function (g) {
      return '<button type="button" class="m-counter c-' + g[0] + '" data-filter="' + g[0] + '" aria-pressed="' +
        (state.filter === g[0]) + '"><b data-count="' + g[0] + '">' + cnt[g[0]] + "</b><span>" + g[1] + "</span></button>";
    }).join("");
    $("m-chips").innerHTML = CHIPS.map(function (c) {
      return '<button type="button" class="m-chip" data-filter="' + c[0] + '" aria-pressed="' + (state.filter === c[0]) +
        '">' + c[1] + "</button>";
    }).join("");
    var rows = state.filter === "closed" ? (state.closed || []) : state.cases.filter(inFilter);
    $("m-listinfo").textContent = (state.filter === "closed" ? "最近办结 " : "在办 " + cnt.open + " 件，显示 ") +
      rows.length + " 件 · " + (state.listAt ? pad(state.listAt.getHours()) + ":" + pad(state.listAt.getMinutes()) + " 更新" : "");
    $("m-list").innerHTML = rows.length ? rows.map(itemHtml).join("") :
      '<li class="m-empty">' + (state.filter === "open" ? "暂无在办案件" : "没有符合条件的案件") + "</li>";
  }
  function itemHtml(c) {
    var u = urgency(c);
    return '<li><button type="button" class="m-item ' + u.cls + '" data-case="' + c.id + '">' +
      '<span class="m-item-top"><span class="m-tag">' + esc(stateLabel(c.status)) + "</span>" +
      (c.emergency ? '<span class="m-tag t-emergency">紧急</span>' : "") +
      '<span class="m-due ' + u.cls + '">' + esc(u.text) + "</span></span>" +
      '<span class="m-item-title">' + esc(c.title) + "</span>" +
      '<span class="m-item-meta">' + esc(c.case_no) + " · " + esc(L_.channels[c.channel] || c.channel) +
      (c.address_text ? " · " + esc(c.address_text) : "") + "</span></button></li>";
  }
  function onListClick(ev) {
    var b = ev.target.closest("[data-filter]");
    if (b) {
      state.filter = b.getAttribute("data-filter");
      if (state.filter === "closed" && !state.closed) {
        api("GET", "/api/cases?status=closed&order=newest&limit=50").then(function (r) {
          state.closed = r.cases; renderList();
        }).catch(function (e) { toast(errText(e)); });
      }
      renderList();
      return;
    }
    var it = ev.target.closest("[data-case]");
    if (it) { location.hash = "#/case/" + it.getAttribute("data-case"); }
  }
  $("v-list").addEventListener("click", onListClick);
  $("m-refresh").addEventListener("click", function () { state.closed = null; loadList(); });
  $("m-report-btn").addEventListener("click", function () { location.hash = "#/report"; });
  $("m-back").addEventListener("click", function () { location.hash = "#/"; });

  // -- maps -----------------------------------------------------------------------------------------
  var gridCache = {};
  function gridLayer(village) {
    if (!village) { return Promise.resolve(null); }
    if (!gridCache[village]) {
      gridCache[village] = api("GET", "/api/layers/grid?parent=" + encodeURIComponent(village) + "&simplify=2");
    }
    return gridCache[village];
  }
  function drawGrids(map, fc, highlight) {
    if (!fc) { return null; }
    var hl = null;
    L.geoJSON(fc, {
      style: function (f) {
        var mine = f.properties.code === highlight;
        return mine ? {color: "#1f4e8c", weight: 3, fillColor: "#7fa7d9", fillOpacity: 0.18}
                    : {color: "#8a9aa9", weight: 1, fillColor: "#dfe6ec", fillOpacity: 0.3, dashArray: "3 3"};
      },
      onEachFeature: function (f, layer) {
        if (f.properties.code === highlight) { hl = layer; }
        layer.bindTooltip(esc(f.properties.name), {sticky: true});
      }
    }).addTo(map);
    return hl;
  }
  function newMap(el) {
    var map = L.map(el, {zoomControl: true, attributionControl: false});
    return map;
  }

  // -- case detail ----------------------------------------------------------------------------------
  function loadCase(id, keepForm) {
    return api("GET", "/api/m/cases/" + id).then(function (b) {
      state.bundle = b;
      if (!keepForm) { state.openForm = null; state.stale = null; }
      renderCase();
    });
  }
  function draft(field) {
    var id = state.bundle.case.id;
    state.drafts[id] = state.drafts[id] || {};
    var k = state.openForm + ":" + field;
    return state.drafts[id][k] === undefined ? "" : state.drafts[id][k];
  }
  function setDraft(action, field, value) {
    var id = state.bundle.case.id;
    state.drafts[id] = state.drafts[id] || {};
    state.drafts[id][action + ":" + field] = value;
  }
  function actionForm(a) {
    var needReason = L_.reason_required.indexOf(a) >= 0, h = '<div class="m-act-form" id="act-form">';
    h += '<p class="m-muted">' + esc(ACTION_HELP[a] || "") + "</p>";
    if (a === "progress") {
      h += '<label for="act-text">进展情况 <b class="m-req">必填</b></label><textarea id="act-text" data-field="text" rows="4">' +
        esc(draft("text")) + "</textarea>";
    }
    if (a === "reply") {
      h += '<label for="act-text">答复内容 <b class="m-req">必填</b></label><textarea id="act-text" data-field="reply" rows="5">' +
        esc(draft("reply")) + "</textarea>" +
        '<label class="m-check"><input type="checkbox" id="act-solved" data-field="solved"' +
        (draft("solved") === false ? "" : " checked") + "> 问题已解决</label>";
    }
    if (a === "request_extension") {
      h += '<label for="act-days">延长工作日数</label><input id="act-days" data-field="days" type="number" min="1" max="90" inputmode="numeric" value="' +
        esc(draft("days") || "3") + '">';
    }
    if (needReason) {
      h += '<label for="act-reason">理由 <b class="m-req">必填</b></label><textarea id="act-reason" data-field="reason" rows="3">' +
        esc(draft("reason")) + "</textarea>";
    }
    if (state.stale) {
      h += '<div class="m-stale" role="alert" id="act-stale"><b>' + esc(state.stale) + '</b>' +
        '<button type="button" class="m-btn" id="act-reload">重新加载案件（保留已填写内容）</button></div>';
    }
    h += '<p class="m-error" id="act-error" role="alert" hidden></p>';
    h += '<button type="button" class="m-btn m-primary" id="act-submit">确认' + esc(L_.actions[a]) + "</button>";
    return h + "</div>";
  }
  function renderCase() {
    var b = state.bundle, c = b.case, u = urgency(c);
    var h = '<div class="m-card"><div class="m-case-head"><span class="m-tag">' + esc(stateLabel(c.status)) + "</span>" +
      (c.emergency ? '<span class="m-tag t-emergency">紧急</span>' : "") +
      '<span class="m-muted">' + esc(c.case_no) + "</span></div>" +
      '<h2 class="m-item-title" id="case-title">' + esc(c.title) + "</h2>" +
      '<div class="m-countdown ' + u.cls + '" id="case-countdown">' + esc(u.text) + (u.sub ? "<small>" + esc(u.sub) + "</small>" : "") + "</div>" +
      '<p class="m-text" id="case-content">' + esc(c.content || "") + "</p>" +
      '<dl class="m-kv"><dt>来源</dt><dd>' + esc(c.channel_label) + " · " + esc(c.kind) + "</dd>" +
      "<dt>地址</dt><dd>" + esc(c.address_text || "（按坐标定位）") + "</dd>" +
      "<dt>诉求人</dt><dd>" + (c.anonymous ? "匿名" : esc(c.reporter_name || "–")) + "</dd>" +
      (c.reporter_phone ? "<dt>电话</dt><dd>" + esc(c.reporter_phone) + "</dd>" : "") +
      "<dt>办理层级</dt><dd>" + esc(L_.levels[c.handling_level] || c.handling_level || "–") + "</dd>" +
      "<dt>受理时间</dt><dd>" + esc(gg.fmtTime(c.received_at)) + "</dd></dl>" +
      (c.reporter_phone && !c.pii_masked ? '<a class="m-btn m-call" href="tel:' + esc(c.reporter_phone) +
        '">拨打诉求人电话</a>' : "") + "</div>";
    h += '<div class="m-card" id="case-actions"><h3>办理</h3>';
    if (b.actions.length) {
      h += '<div class="m-actions">' + b.actions.map(function (a) {
        var danger = a === "return" || a === "escalate";
        return '<button type="button" class="m-btn' + (a === "sign" ? " m-primary" : danger ? "" : "") +
          '" data-action="' + a + '" aria-expanded="' + (state.openForm === a) + '">' + esc(L_.actions[a]) + "</button>";
      }).join("") + "</div>";
      if (state.openForm) { h += actionForm(state.openForm); }
    } else {
      h += '<p class="m-muted">' + (c.status === "replied" ? "已答复，等待群众评价。" :
        c.status === "received" || c.status === "accepted" ? "等待受理派单。" :
        "当前没有需要您办理的操作（本件由" + esc(L_.levels[c.handling_level] || "其他单位") + "办理）。") + "</p>";
    }
    h += "</div>";
    h += '<div class="m-card"><h3>位置</h3>' + (c.lon !== null && c.lon !== undefined ?
      '<div class="m-map" id="case-map"></div><p class="m-muted" id="case-grid">网格 ' + esc(c.grid_code || "未定位") + "</p>" :
      '<p class="m-muted">尚未定位，等待受理员标注。</p>') + "</div>";
    h += '<div class="m-card"><h3>现场照片（' + b.attachments.length + '）</h3><div class="m-thumbs" id="case-photos">' +
      b.attachments.map(function (p) {
        return '<div class="m-thumb"><a href="' + esc(p.url) + '" target="_blank" rel="noopener"><img src="' + esc(p.url) +
          '" alt="现场照片 ' + esc(p.file_name) + '" loading="lazy"></a></div>';
      }).join("") + "</div>" + (b.may_attach ?
      '<input id="case-photo-input" class="m-file" type="file" accept="image/jpeg,image/png,image/webp" multiple>' +
      '<label for="case-photo-input" class="m-btn m-pick">添加照片（每次最多 ' + L_.max_photos + " 张）</label>" : "") +
      "</div>";
    if (c.package) {  // 领导包案 (seeds 002/004): who answers for it, by when, to what standard, with which plan
      var pk = c.package;
      h += '<div class="m-card" id="case-package"><h3>领导包案' + (c.outcome ? ' <span class="m-tag">' + esc(c.outcome) +
        "</span>" : "") + '</h3><dl class="m-dl"><dt>包案领导</dt><dd>' + esc(pk.leader) + "</dd><dt>责任单位</dt><dd>" +
        esc(pk.unit) + "</dd><dt>办结时限</dt><dd>" + esc(pk.target_date) + "</dd>" +
        (pk.standard ? "<dt>办理标准</dt><dd>" + esc(pk.standard) + "</dd>" : "") + "<dt>一案一策</dt><dd>" +
        esc(pk.plan) + "</dd></dl></div>";
    }
    h += '<div class="m-card" id="case-deadlines"><h3>办理时限</h3>' + deadlinesHtml(c) + "</div>";
    h += '<div class="m-card"><h3>办理经过</h3><ol class="m-timeline" id="case-events">' + c.events.slice().reverse().map(eventHtml).join("") + "</ol></div>";
    $("v-case").innerHTML = h;
    if (c.lon !== null && c.lon !== undefined) { caseMap(c); }
  }
  function caseMap(c) {
    var map = newMap("case-map");
    map.setView([c.lat, c.lon], 16);
    L.circleMarker([c.lat, c.lon], {radius: 9, color: "#fff", weight: 3, fillColor: "#c62828", fillOpacity: 1})
      .addTo(map).bindTooltip("事发位置");
    gridLayer(c.village_code).then(function (fc) {
      var hl = drawGrids(map, fc, c.grid_code);
      var f = fc && fc.features.filter(function (x) { return x.properties.code === c.grid_code; })[0];
      if (f && $("case-grid")) { $("case-grid").textContent = "网格：" + f.properties.name + "（" + c.grid_code + "）"; }
      if (hl) { map.fitBounds(hl.getBounds().extend([c.lat, c.lon]), {padding: [12, 12], maxZoom: 17}); }
    }).catch(function () { /* the point alone is still useful */ });
  }
  function deadlinesHtml(c) {
    var d = c.deadlines || {}, ms = d.milestones || {}, done = {accept: c.accepted_at, sign: c.signed_at,
      reply: c.replied_at, handle: c.closed_at};
    var keys = Object.keys(ms).sort(function (a, b) { return new Date(ms[a].due_at) - new Date(ms[b].due_at); });
    if (!keys.length) { return '<p class="m-muted">无</p>'; }
    return '<p class="m-muted">' + esc(d.profile_label || "") + "：" + esc(d.source || "") + "</p>" + keys.map(function (k) {
      var m = ms[k];
      return '<div class="m-ms"><b>' + esc(m.label || L_.milestones[k] || k) + "截止 " + esc(gg.fmtTime(m.due_at)) + "</b>" +
        (done[k] ? ' <span class="m-done">✓ 已于 ' + esc(shortTime(done[k])) + " 完成</span>" : "") +
        (m.provisional ? ' <span class="m-muted">（暂按受理时间计算）</span>' : "") +
        "<p>" + esc(m.explanation) + "</p></div>";
    }).join("");
  }
  function eventHtml(e) {
    var d = e.data || {}, txt = e.reason || d.text || d.reply || "";
    var extra = "";
    if (e.action === "request_extension" && d.days) { extra = "申请延期 " + d.days + " 个工作日"; }
    if (e.action === "attach" && d.count) { extra = d.count + " 张照片"; }
    if (e.action === "escalate" && d.to_level) { extra = "升级至" + (L_.levels[d.to_level] || d.to_level); }
    return "<li><time>" + esc(gg.fmtTime(e.at)) + '</time><span class="m-ev">' + esc(L_.actions[e.action] || e.action) +
      "</span> <span class=\"m-muted\">" + esc(L_.roles[e.actor_role] || e.actor_role || "") + "</span>" +
      (extra ? '<p class="m-text">' + esc(extra) + "</p>" : "") +
      (txt ? '<p class="m-text">' + esc(txt) + "</p>" : "") + "</li>";
  }
  function submitAction() {
    var a = state.openForm, c = state.bundle.case, body = {version: c.version};
    var err = $("act-error");
    function need(field, label) {
      var v = (draft(field) || "").trim();
      if (!v) { err.textContent = "请填写" + label; err.hidden = false; throw new Error("missing"); }
      return v;
    }
    try {
      if (a === "progress") { body.text = need("text", "进展情况"); }
      if (a === "reply") { body.reply = need("reply", "答复内容"); body.solved = draft("solved") !== false; }
      if (a === "request_extension") { body.days = parseInt(draft("days") || "3", 10); }
      if (L_.reason_required.indexOf(a) >= 0) { body.reason = need("reason", "理由"); }
    } catch (e) { return; }
    $("act-submit").disabled = true;
    api("POST", "/api/cases/" + c.id + "/actions/" + a, body).then(function () {
      delete state.drafts[c.id];
      state.openForm = null; state.stale = null;
      toast(L_.actions[a] + "成功");
      state.counts = null;
      return loadCase(c.id);
    }).catch(function (e) {
      if (e.status === 409 && e.field === "version") {
        var cur = e.body && e.body.error && e.body.error.details || {};
        state.stale = "该案件刚刚已被他人更新（" + (cur.status ? "现为“" + stateLabel(cur.status) + "”，" : "") +
          "版本 " + (cur.version || "?") + "），本次" + L_.actions[a] + "未提交。您填写的内容已保留，请重新加载查看最新情况后再确认。";
        renderCase();
      } else {
        var el = $("act-error");
        if (el) { el.textContent = errText(e); el.hidden = false; }
        if ($("act-submit")) { $("act-submit").disabled = false; }
      }
    });
  }
  $("v-case").addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-action]");
    if (b) {
      var a = b.getAttribute("data-action");
      state.openForm = state.openForm === a ? null : a;
      state.stale = null;
      renderCase();
      var f = $("act-form");
      if (f) { f.scrollIntoView({block: "nearest"}); var t = f.querySelector("textarea, input"); if (t) { t.focus(); } }
      return;
    }
    if (ev.target.id === "act-submit") { submitAction(); }
    if (ev.target.id === "act-reload") {
      state.stale = null;
      loadCase(state.bundle.case.id, true).then(function () {
        var a = state.openForm;
        if (a && state.bundle.actions.indexOf(a) < 0) {
          state.stale = "案件已变为“" + stateLabel(state.bundle.case.status) + "”，不能再" + L_.actions[a] + "。您填写的内容仍保留在此。";
          state.bundle.actions.push(a);
          renderCase();
        }
        toast("已重新加载");
      }).catch(function (e) { toast(errText(e)); });
    }
  });
  $("v-case").addEventListener("input", function (ev) {
    var f = ev.target.getAttribute("data-field");
    if (f && state.openForm) {
      setDraft(state.openForm, f, ev.target.type === "checkbox" ? ev.target.checked : ev.target.value);
    }
  });
  $("v-case").addEventListener("change", function (ev) {
    if (ev.target.id === "act-solved") { setDraft(state.openForm, "solved", ev.target.checked); }
    if (ev.target.id !== "case-photo-input") { return; }
    var files = Array.prototype.slice.call(ev.target.files || []);
    if (!files.length) { return; }
    if (files.length > L_.max_photos) { toast("一次最多上传 " + L_.max_photos + " 张照片"); ev.target.value = ""; return; }
    var fd = new FormData();
    files.forEach(function (f) { fd.append("photo", f, f.name); });
    toast("正在上传照片…");
    var id = state.bundle.case.id;
    api("POST", "/api/cases/" + id + "/attachments", fd).then(function (r) {
      toast(r.count ? "已上传 " + r.count + " 张照片" : "这些照片已上传过");
      return loadCase(id, true);
    }).catch(function (e) { toast(errText(e)); ev.target.value = ""; });
  });

  // -- 巡查上报 ---------------------------------------------------------------------------------------
  var reportMap = null, reportMarker = null;
  function newReport() {
    state.report = {key: gg.submissionKey(), photos: [], lon: null, lat: null, acc: null, moved: false};
    ["report-title", "report-content", "report-address"].forEach(function (i) { $(i).value = ""; });
    $("report-emergency").checked = false;
    $("report-category").value = "";
    $("report-kind").value = "求决";
    $("report-ok").hidden = true; $("report-error").hidden = true;
    $("report-submit").disabled = false;
    $("report-submit").textContent = "提交上报";
    renderThumbs();
  }
  function fillReportSelects() {
    $("report-kind").innerHTML = L_.kinds.map(function (k) { return '<option value="' + esc(k) + '">' + esc(k) + "</option>"; }).join("");
    var top = {};
    L_.categories.forEach(function (c) { if (!c.parent_code) { top[c.code] = c.name; } });
    $("report-category").innerHTML += L_.categories.filter(function (c) { return c.parent_code; }).map(function (c) {
      return '<option value="' + esc(c.code) + '">' + esc((top[c.parent_code] || "") + " / " + c.name) + "</option>";
    }).join("");
  }
  function setPos(lat, lon, acc, fromGps) {
    var r = state.report;
    r.lat = lat; r.lon = lon; r.acc = acc === undefined ? null : acc;
    if (!fromGps) { r.moved = true; }
    reportMarker.setLatLng([lat, lon]);
    $("report-pos").textContent = (fromGps ? "GPS 定位" : "手动标注") + "：" + lat.toFixed(5) + ", " + lon.toFixed(5) +
      (fromGps && acc ? "（精度约 " + Math.round(acc) + " 米）" : "");
  }
  function locate() {
    if (!navigator.geolocation) { $("report-pos").textContent = "本机不支持定位，请在地图上标注位置"; return; }
    $("report-pos").textContent = "正在获取定位…";
    navigator.geolocation.getCurrentPosition(function (p) {
      setPos(p.coords.latitude, p.coords.longitude, p.coords.accuracy, true);
      reportMap.setView([p.coords.latitude, p.coords.longitude], 15);
    }, function () {
      $("report-pos").textContent = "无法获取定位，请拖动标记到事发位置";
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 30000});
  }
  function openReport() {
    show("v-report", "巡查上报", true);
    if (!state.report) { newReport(); }
    if (!reportMap) {
      reportMap = newMap("report-map");
      reportMap.setView([43.17, 124.35], 13);
      reportMarker = L.marker(reportMap.getCenter(), {draggable: true, autoPan: true,
        icon: L.divIcon({className: "", html: '<div class="m-pin"></div>', iconSize: [0, 0]})}).addTo(reportMap);
      reportMarker.on("dragend", function () { var p = reportMarker.getLatLng(); setPos(p.lat, p.lng); });
      reportMap.on("click", function (e) { setPos(e.latlng.lat, e.latlng.lng); });
      var village = state.me && state.me.region_code;
      gridLayer(village).then(function (fc) {
        var hl = drawGrids(reportMap, fc, state.me.grid_code);
        if (hl && state.report.lat === null) { reportMap.fitBounds(hl.getBounds(), {padding: [10, 10]});
          var c = hl.getBounds().getCenter(); reportMarker.setLatLng(c); }
      }).catch(function () {});
    } else {
      setTimeout(function () { reportMap.invalidateSize(); }, 0);
    }
    if (state.report.lat === null) { locate(); }
  }
  $("report-locate").addEventListener("click", locate);
  function renderThumbs() {
    var ph = state.report ? state.report.photos : [];
    $("report-thumbs").innerHTML = ph.map(function (f, i) {
      return '<div class="m-thumb"><img alt="待上传照片 ' + (i + 1) + '" src="' + esc(f.url) + '">' +
        '<button type="button" data-remove="' + i + '" aria-label="删除第 ' + (i + 1) + ' 张照片">×</button></div>';
    }).join("");
  }
  $("report-photos").addEventListener("change", function (ev) {
    var r = state.report, files = Array.prototype.slice.call(ev.target.files || []);
    files.forEach(function (f) {
      if (r.photos.length >= L_.max_photos) { toast("最多 " + L_.max_photos + " 张照片"); return; }
      if (f.size > L_.max_photo_mb * 1048576) { toast("照片“" + f.name + "”超过 " + L_.max_photo_mb + " MB"); return; }
      r.photos.push({file: f, url: URL.createObjectURL(f)});
    });
    ev.target.value = "";
    renderThumbs();
  });
  $("report-thumbs").addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-remove]");
    if (!b) { return; }
    var p = state.report.photos.splice(+b.getAttribute("data-remove"), 1)[0];
    if (p) { URL.revokeObjectURL(p.url); }
    renderThumbs();
  });
  $("report-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var r = state.report, err = $("report-error");
    err.hidden = true;
    var title = $("report-title").value.trim();
    var problem = !title ? "请填写问题标题" : r.lat === null ? "请先定位或在地图上标注事发位置" :
      !r.photos.length ? "请至少拍摄 1 张现场照片" : null;
    if (problem) { err.textContent = problem; err.hidden = false; return; }
    var sub = {channel: "grid_report", kind: $("report-kind").value, title: title,
      content: $("report-content").value.trim(), address_text: $("report-address").value.trim() || null,
      category_code: $("report-category").value || null, emergency: $("report-emergency").checked,
      lon: r.lon, lat: r.lat, crs: "EPSG:4326", submission_key: r.key};
    var fd = new FormData();
    fd.append("case", JSON.stringify(sub));
    r.photos.forEach(function (p) { fd.append("photo", p.file, p.file.name); });
    $("report-submit").disabled = true;
    $("report-submit").textContent = "正在提交…";
    api("POST", "/api/cases", fd).then(function (c) {
      var ok = $("report-ok");
      ok.innerHTML = "<b>" + (c.duplicate_submission ? "此前的提交已登记成功" : "已上报") + "</b>：编号 " + esc(c.case_no) +
        "，" + esc(stateLabel(c.status)) + "，等待受理派单。";
      ok.hidden = false;
      $("report-submit").textContent = "继续上报新问题";
      $("report-submit").disabled = false;
      state.report.done = true;
      state.counts = null;
      toast("上报成功：" + c.case_no);
    }).catch(function (e) {
      err.textContent = (e.status === 0 ? "网络不稳定，提交结果未确认。请点击“重新提交”，不会重复登记。" : errText(e));
      err.hidden = false;
      $("report-submit").disabled = false;
      $("report-submit").textContent = "重新提交";
    });
  });
  // After a success the button starts a new report (a new submission key).
  $("report-submit").addEventListener("click", function (ev) {
    if (state.report && state.report.done) { ev.preventDefault(); newReport(); window.scrollTo(0, 0); }
  });

  // -- routing -----------------------------------------------------------------------------------------
  function route() {
    if (!state.me) { return; }
    var h = location.hash, m = /^#\/case\/(\d+)$/.exec(h);
    if (m) {
      show("v-case", "案件详情", true);
      $("v-case").innerHTML = '<p class="m-empty">正在加载…</p>';
      loadCase(m[1]).catch(function (e) {
        $("v-case").innerHTML = '<p class="m-empty">' + esc(e.status === 404 ? "案件不存在或不在您的辖区" : errText(e)) + "</p>";
      });
    } else if (h === "#/report") {
      openReport();
    } else {
      show("v-list", "我的案件", false);
      if (!state.counts) { loadList(); } else { renderList(); }
    }
  }
  window.addEventListener("hashchange", route);
  // Keep the list and its countdowns current while it is on screen (every 2 minutes).
  setInterval(function () {
    if (state.me && !$("v-list").hidden && document.visibilityState === "visible") { loadList(); }
  }, 120000);
  fillReportSelects();
  var boot = JSON.parse(document.getElementById("m-app").getAttribute("data-me"));
  if (boot) { state.me = boot; route(); } else { showLogin(); }
})();
