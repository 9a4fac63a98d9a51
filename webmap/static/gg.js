/* gridgov shared page helpers: JSON API calls with the CSRF header, escaping, formatting.
   Every page script uses gg.api() for requests and gg.esc() for citizen text it puts into HTML. */
(function (root) {
  "use strict";
  function csrf() {
    var m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.getAttribute("content") : "";
  }
  function setCsrf(tok) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (!m) { m = document.createElement("meta"); m.setAttribute("name", "csrf-token"); document.head.appendChild(m); }
    if (tok) { m.setAttribute("content", tok); }
  }
  /* Call a JSON endpoint. Resolves with the parsed body; rejects with an Error carrying
     .status, .code, .field and the server's Chinese/English message. */
  function api(method, url, body, opts) {
    opts = opts || {};
    var headers = {"Accept": "application/json"};
    var init = {method: method, credentials: "same-origin", headers: headers};
    if (method !== "GET" && method !== "HEAD") { headers["X-CSRF-Token"] = csrf(); }
    if (body instanceof FormData) { init.body = body; }
    else if (body !== undefined && body !== null) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    return fetch(url, init).then(function (r) {
      var ct = r.headers.get("Content-Type") || "";
      var p = ct.indexOf("json") >= 0 ? r.json() : r.text().then(function (t) { return {text: t}; });
      return p.then(function (data) {
        if (data && data.csrf_token) { setCsrf(data.csrf_token); }
        if (!r.ok) {
          var e = (data && data.error) || {};
          var err = new Error(e.message || ("HTTP " + r.status));
          err.status = r.status; err.code = e.code; err.field = e.field; err.body = data;
          throw err;
        }
        return data;
      });
    });
  }
  var ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"};
  function esc(s) { return s === null || s === undefined ? "" : String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  function fmtInt(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("zh-CN"); }
  function fmtPct(x, digits) { return x === null || x === undefined ? "–" : (100 * x).toFixed(digits === undefined ? 1 : digits) + "%"; }
  function fmtTime(iso) {
    if (!iso) { return "–"; }
    var d = new Date(iso);
    function p(n) { return n < 10 ? "0" + n : "" + n; }
    return d.getFullYear() + "-" + p(d.getMonth() + 1) + "-" + p(d.getDate()) + " " + p(d.getHours()) + ":" + p(d.getMinutes());
  }
  /* A submission key for idempotent intake: stable across retries of the same form. */
  function submissionKey() {
    var a = new Uint8Array(16); (root.crypto || root.msCrypto).getRandomValues(a);
    return "web-" + Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }
  root.gg = {api: api, esc: esc, csrf: csrf, setCsrf: setCsrf, fmtInt: fmtInt, fmtPct: fmtPct, fmtTime: fmtTime,
             submissionKey: submissionKey};
})(window);
