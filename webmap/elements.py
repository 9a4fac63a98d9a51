"""Small folium elements of our own: layers fetched from our JSON endpoints, assets served locally."""

from __future__ import annotations

import folium
from branca.element import MacroElement
from jinja2 import Template

# Every script and stylesheet comes from the app itself (intranet, no CDN).
LOCAL_JS = [("leaflet", "/vendor/leaflet/dist/leaflet.js")]
LOCAL_CSS = [("leaflet_css", "/vendor/leaflet/dist/leaflet.css")]


def local_map(lon: float, lat: float, zoom: int = 9, tiles: str | None = None, **kw) -> folium.Map:
    """A folium Map whose assets are served by gridgov; the base map is optional (an intranet tile URL or none)."""
    m = folium.Map(location=[lat, lon], zoom_start=zoom, tiles=None, control_scale=True, prefer_canvas=True, **kw)
    m.default_js = list(LOCAL_JS)
    m.default_css = list(LOCAL_CSS)
    LocalAttribution().add_to(m)
    if tiles:
        folium.TileLayer(tiles=tiles, attr="intranet tiles", name="底图").add_to(m)
    return m


class LocalAttribution(MacroElement):
    """Leaflet's attribution prefix links to leafletjs.com; on an intranet it is plain text."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        {{ this._parent.get_name() }}.attributionControl.setPrefix("Leaflet");
        {% endmacro %}
        """
    )


class RemoteGeoJson(MacroElement):
    """A GeoJSON layer fetched by the browser from `url` (never inlined), styled by a JS function."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = L.geoJson(null, {
            style: {{ this.style_js }},
            onEachFeature: function (feature, layer) {
                var p = feature.properties || {};
                var label = {{ this.label_js }};
                if (label) { layer.bindTooltip(String(label).replace(/[&<>"']/g, function (c) {
                    return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]; }),
                    {sticky: true}); }
            }
        });
        {% if this.show %}{{ this.get_name() }}.addTo({{ this._parent.get_name() }});{% endif %}
        fetch({{ this.url|tojson }}).then(function (r) { return r.json(); })
            .then(function (data) {
                {{ this.get_name() }}.addData(data);
                // how many features arrived: for the operator's status line and for browser tests
                document.body.setAttribute({{ ("data-layer-" ~ this.key)|tojson }}, data.features.length);
            });
        {% endmacro %}
        """
    )

    def __init__(self, url: str, name: str, style_js: str, label_js: str = "p.name", show: bool = True,
                 key: str = "layer"):
        super().__init__()
        self.key = key
        self._name = "RemoteGeoJson"
        self.layer_name = name
        self.url = url
        self.style_js = style_js
        self.label_js = label_js
        self.show = show
        self.overlay = True
        self.control = True


class TitlePanel(MacroElement):
    """A fixed title box on the map (text escaped by Jinja's autoescape-free path: we escape explicitly)."""

    _template = Template(
        """
        {% macro html(this, kwargs) %}
        <div style="position:absolute;top:10px;left:60px;z-index:1000;background:rgba(255,255,255,.92);
                    padding:8px 14px;border-radius:6px;box-shadow:0 1px 4px rgba(0,0,0,.3);
                    font:14px/1.5 'Noto Sans CJK SC','Microsoft YaHei',sans-serif;">
          <div style="font-size:18px;font-weight:600;">{{ this.title|e }}</div>
          <div>{{ this.subtitle|e }}</div>
        </div>
        {% endmacro %}
        """
    )

    def __init__(self, title: str, subtitle: str = ""):
        super().__init__()
        self._name = "TitlePanel"
        self.title = title
        self.subtitle = subtitle


# -- the base map shared by every map page ---------------------------------------------------------

ROADS_URL = "/api/layers/road?simplify=5"


def base_map_options(settings=None) -> dict:
    """What goes under a map's layers: no base map by default (the outlines are the map), the city's own
    roads as a light vector layer, and an intranet XYZ tile layer when GRIDGOV_TILE_URL is set.

    With GRIDGOV_TILE_CRS=gcj02 the page shifts the *tiles* by the GCJ-02 offset at the view centre
    (recomputed as the map moves; /static/basemap.js), so our WGS84 overlays, coordinates and clicks stay
    exact and the tiles line up with them.
    """
    if settings is None:
        from flask import current_app

        settings = current_app.extensions["gridgov_settings"]
    return {"tiles": getattr(settings, "tile_url", None), "tiles_crs": getattr(settings, "tile_crs", "wgs84"),
            "roads": ROADS_URL}


class BaseMap(MacroElement):
    """Add the shared base map (roads, optional intranet tiles with the GCJ-02 shift) to a folium map."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        var {{ this.get_name() }} = window.ggBaseMap.attach({{ this._parent.get_name() }}, {{ this.options|tojson }});
        {% endmacro %}
        """
    )

    def __init__(self, options: dict | None = None, **style):
        super().__init__()
        self._name = "BaseMap"
        self.options = {**(options if options is not None else base_map_options()), **style}

    def render(self, **kwargs):
        from branca.element import JavascriptLink

        self.get_root().header.add_child(JavascriptLink("/static/basemap.js"), name="gg_basemap_js")
        super().render(**kwargs)
