/* gridgov's base map, shared by every map page: no base map by default (the outlines are the map), the
   city's own roads as a light vector layer, and optionally an intranet XYZ tile layer.
   A GCJ-02 tile source (GRIDGOV_TILE_CRS=gcj02) is shifted by the GCJ-02 offset at the view centre,
   recomputed as the map moves, so the WGS84 overlays and coordinates stay exact. The offset formula is
   the one of gis/coords.py (wgs_to_gcj). */
(function (root) {
  "use strict";
  var A = 6378245.0, EE = 0.00669342162296594323, PI = Math.PI;
  function inChina(lon, lat) { return lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271; }
  function wgsToGcj(lon, lat) {
    if (!inChina(lon, lat)) { return [lon, lat]; }
    var x = lon - 105.0, y = lat - 35.0, sx = Math.sqrt(Math.abs(x));
    var common = (20.0 * Math.sin(6.0 * x * PI) + 20.0 * Math.sin(2.0 * x * PI)) * 2.0 / 3.0;
    var dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sx + common +
      (20.0 * Math.sin(y * PI) + 40.0 * Math.sin(y / 3.0 * PI)) * 2.0 / 3.0 +
      (160.0 * Math.sin(y / 12.0 * PI) + 320.0 * Math.sin(y * PI / 30.0)) * 2.0 / 3.0;
    var dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sx + common +
      (20.0 * Math.sin(x * PI) + 40.0 * Math.sin(x / 3.0 * PI)) * 2.0 / 3.0 +
      (150.0 * Math.sin(x / 12.0 * PI) + 300.0 * Math.sin(x / 30.0 * PI)) * 2.0 / 3.0;
    var radlat = lat / 180.0 * PI, magic = 1 - EE * Math.sin(radlat) * Math.sin(radlat), sm = Math.sqrt(magic);
    dlat = (dlat * 180.0) / ((A * (1 - EE)) / (magic * sm) * PI);
    dlon = (dlon * 180.0) / (A / sm * Math.cos(radlat) * PI);
    return [lon + dlon, lat + dlat];
  }

  /* A tile layer drawn in GCJ-02: its container is moved by the offset at the view centre, and it loads
     tiles for a window widened by that offset so no strip stays blank. */
  var ShiftedTiles = L.TileLayer.extend({
    onAdd: function (map) {
      L.TileLayer.prototype.onAdd.call(this, map);
      map.on("move zoomend viewreset resize", this._ggShift, this);
      this._ggShift();
    },
    onRemove: function (map) {
      map.off("move zoomend viewreset resize", this._ggShift, this);
      L.TileLayer.prototype.onRemove.call(this, map);
    },
    _ggShift: function () {
      var map = this._map, el = this.getContainer();
      if (!map || !el) { return; }
      var c = map.getCenter(), g = wgsToGcj(c.lng, c.lat);
      var pc = map.project(c), pg = map.project(L.latLng(g[1], g[0]));
      var dx = Math.round(pc.x - pg.x), dy = Math.round(pc.y - pg.y);
      el.style.left = dx + "px"; el.style.top = dy + "px";
      this.ggOffset = [dx, dy];
      this._ggPad = Math.max(Math.abs(dx), Math.abs(dy));
    },
    _getTiledPixelBounds: function (center) {
      var b = L.TileLayer.prototype._getTiledPixelBounds.call(this, center), o = this._ggPad || 0;
      return L.bounds(b.min.subtract([o, o]), b.max.add([o, o]));
    }
  });

  function attach(map, opts) {
    opts = opts || {};
    var out = {};
    if (!map.getPane("gg-roads")) {
      var pane = map.createPane("gg-roads");
      pane.style.zIndex = 350;
      pane.style.pointerEvents = "none";
    }
    if (opts.tiles) {
      var tOpts = {attribution: "底图：内网瓦片", maxZoom: 19};
      out.tiles = (opts.tiles_crs === "gcj02" ? new ShiftedTiles(opts.tiles, tOpts) : L.tileLayer(opts.tiles, tOpts));
      out.tiles.addTo(map);
    }
    if (opts.roads) {
      out.roads = L.geoJSON(null, {pane: "gg-roads", interactive: false,
        style: {color: opts.road_color || "#7f8ea3", weight: opts.road_weight || 1.2, opacity: opts.road_opacity || 0.6}});
      out.roads.addTo(map);
      out.ready = fetch(opts.roads, {credentials: "same-origin"}).then(function (r) { return r.json(); })
        .then(function (fc) {
          out.roads.addData(fc);
          document.body.setAttribute("data-layer-road", fc.features.length);
          return out;
        });
    }
    return out;
  }
  root.ggBaseMap = {attach: attach, wgsToGcj: wgsToGcj};
})(window);
