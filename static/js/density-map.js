/* SaniGrid density map: loads cells, counts and problems as compact GeoJSON and draws them
   on a canvas renderer so tens of thousands of cells stay fast. */
(function () {
  "use strict";
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }
  function colourFor(bins, colours, n) {
    for (var i = 1; i < bins.length; i++) { if (n < bins[i]) { return colours[i - 1]; } }
    return colours[colours.length - 1];
  }
  function getJSON(url) {
    return fetch(url, {credentials: "same-origin"}).then(function (r) {
      if (!r.ok) { throw new Error(url + " " + r.status); }
      return r.json();
    });
  }
  window.SaniGrid = window.SaniGrid || {};
  window.SaniGrid.loadDensity = function (opts) {
    var map = opts.map;
    // Cells get their own pane under the overlay pane, so roads, the boundary and the
    // problem markers (drawn later) stay on top of the coloured fills.
    if (!map.getPane("cells")) { map.createPane("cells").style.zIndex = 350; }
    var renderer = L.canvas({padding: 0.3, pane: "cells"});
    var status = document.getElementById("map-status");
    return Promise.all([getJSON(opts.cellsUrl), getJSON(opts.countsUrl)]).then(function (res) {
      var cells = res[0], counts = res[1].counts || {};
      // One tooltip and one pair of hover handlers on the whole layer (events bubble up
      // from each cell): binding them per cell cost seconds for 30,000 cells.
      var layer = L.geoJSON(cells, {
        renderer: renderer, pane: "cells",
        style: function (f) {
          var n = counts[f.properties.i] || 0;
          f.properties.open = n;
          return {fillColor: colourFor(opts.bins, opts.colours, n), color: "#555", weight: 0.6,
                  fillOpacity: 0.65};
        }
      });
      layer.bindTooltip(function (l) {
        var p = l.feature.properties;
        return "网格编码 " + esc(p.c) + "<br>责任单位 " + esc(cells.units[p.u]) +
               "<br>未销号问题 " + (p.open || 0);
      }, {sticky: true});
      layer.on("mouseover", function (e) { e.layer.setStyle({weight: 2.5, color: "#000"}); });
      layer.on("mouseout", function (e) { e.layer.setStyle({weight: 0.6, color: "#555"}); });
      opts.group.addLayer(layer);
      window.SaniGrid.cells = layer;
      if (opts.fit && cells.bbox) {
        map.fitBounds([[cells.bbox[1], cells.bbox[0]], [cells.bbox[3], cells.bbox[2]]]);
      }
      if (status) {
        status.dataset.cells = cells.features.length;
        status.dataset.open = res[1].total;
        document.getElementById("cell-count").textContent = cells.features.length;
        document.getElementById("open-count").textContent = res[1].total;
      }
      return layer;
    }).catch(function (err) {
      if (status) { status.textContent = "地图数据加载失败，请刷新重试 (" + err.message + ")"; }
    });
  };
  window.SaniGrid.loadIssues = function (opts) {
    var colours = opts.colours;
    return getJSON(opts.url).then(function (fc) {
      var markers = fc.features.map(function (f) {
        var p = f.properties, c = f.geometry.coordinates;
        var m = L.circleMarker([c[1], c[0]], {radius: 6, color: "#fff", weight: 1.5, pane: "markerPane",
          fillColor: colours[p.s] || "#333", fillOpacity: 0.95});
        m.props = p;
        return m;
      });
      // Tooltips and popups are bound on first use: thousands of markers load at once.
      opts.cluster.on("mouseover", function (e) {
        var m = e.layer, p = m.props;
        if (p && !m.getTooltip()) {
          m.bindTooltip("#" + p.id + " " + esc(p.d.slice(0, 20))).openTooltip();
        }
      });
      opts.cluster.on("click", function (e) {
        var m = e.layer, p = m.props;
        if (p && !m.getPopup()) {
          m.bindPopup("<b>#" + p.id + " " + esc(p.sl) + "</b><br>" + esc(p.c) + "<br>" +
                      esc(p.d) + "<br>" + esc(p.a) + "<br><a href='/issues/" + p.id +
                      "' target='_top'>查看详情</a>", {maxWidth: 280}).openPopup();
        }
      });
      opts.cluster.addLayers(markers);
      window.SaniGrid.issueCount = markers.length;
      return markers.length;
    });
  };
})();
