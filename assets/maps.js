/* Map style functions for dashboards/maps.py (dash-leaflet functional props: {"variable": "scMaps.x"}).
 * Each gets (feature | latlng ..., context); context.hideout carries the layer's parameters.
 * Colours are decided in Python (feature.properties.colour) except the district choropleth, whose
 * scale travels in hideout so a new KPI only needs new data + hideout. No feature text is ever
 * put into HTML here (tooltips are escaped in Python; labels are set with textContent). */
(function () {
  "use strict";
  function colourOf(value, h) {
    if (value === null || value === undefined) { return h.none || "#3a4452"; }
    var i = 0;
    (h.breaks || []).forEach(function (b) { if (value >= b) { i += 1; } });
    return (h.colours || [])[i] || h.none;
  }
  function labelIcon(text, cls, size, colour) {
    var el = document.createElement("div");
    el.className = cls;
    el.style.background = colour;
    el.style.width = el.style.height = size + "px";
    el.style.lineHeight = size + "px";
    el.textContent = text;
    return L.divIcon({ html: el, className: "sc-icon", iconSize: [size, size] });
  }
  var maps = [];
  if (window.L && L.Map && L.Map.addInitHook) {
    L.Map.addInitHook(function () { maps.push(this); });
  }
  window.scMaps = {
    /* the Leaflet map in the container with this id (tests and rotations read the view) */
    map: function (id) {
      for (var i = maps.length - 1; i >= 0; i -= 1) {
        var el = maps[i].getContainer();
        if (el && el.isConnected && (el.id === id || (el.closest && el.closest("#" + id)))) { return maps[i]; }
      }
      return null;
    },
    colourOf: colourOf,
    districtStyle: function (feature, context) {
      var h = (context && context.hideout) || {};
      return { fillColor: colourOf(feature.properties.value, h), fillOpacity: h.opacity || 0.55,
               color: "#c9d3df", weight: 2, opacity: 0.9 };
    },
    districtHover: function () { return { weight: 4, color: "#ffffff" }; },
    segmentStyle: function (feature) {
      var p = feature.properties;
      return { color: p.colour, weight: p.stale ? 4 : 7, opacity: p.stale ? 0.6 : 0.95,
               dashArray: p.stale ? "6 8" : null, lineCap: "round" };
    },
    incidentPoint: function (feature, latlng) {
      var p = feature.properties;
      var size = 22 + 8 * (p.severity || 2);
      var el = document.createElement("div");
      el.className = "sc-incident sev-" + p.severity + (p.overdue ? " overdue" : "");
      el.style.background = p.colour;
      el.style.width = el.style.height = size + "px";
      el.textContent = "!";
      el.style.lineHeight = size + "px";
      return L.marker(latlng, { icon: L.divIcon({ html: el, className: "sc-icon", iconSize: [size, size] }),
                                zIndexOffset: 1000 + 100 * (p.severity || 0), keyboard: false });
    },
    unitPoint: function (feature, latlng) {
      return L.circleMarker(latlng, { radius: 6, color: "#0b0f14", weight: 2, fillColor: feature.properties.colour,
                                      fillOpacity: 1 });
    },
    stationPoint: function (feature, latlng) {
      var p = feature.properties;
      return L.marker(latlng, { icon: labelIcon(p.label, "sc-station" + (p.offline ? " offline" : "")
                                                + (p.category === "moderate" ? " light" : ""), 44, p.colour),
                                keyboard: false });
    },
    appealPoint: function (feature, latlng) {
      return L.circleMarker(latlng, { radius: 5, color: "#e9d8ff", weight: 1, fillColor: "#b48cff", fillOpacity: 0.9 });
    },
    appealCluster: function (feature, latlng) {
      var n = feature.properties.point_count;
      var size = n < 10 ? 34 : n < 50 ? 44 : 56;
      return L.marker(latlng, { icon: labelIcon(String(n), "sc-cluster", size, "rgba(150, 100, 255, 0.85)") });
    }
  };
})();
