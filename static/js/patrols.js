/* Planning page: show the panel of the chosen selection; clicks on the map add stops or
   set the start/end point (WGS-84, the map's own coordinates). */
(function () {
  "use strict";
  var form = document.querySelector("[data-plan-map]");
  if (!form) { return; }

  function syncPanels() {
    var chosen = form.querySelector("input[name=selection]:checked");
    form.querySelectorAll(".sel-panel").forEach(function (panel) {
      panel.classList.toggle("active", !!chosen && panel.getAttribute("data-for") === chosen.value);
    });
  }
  form.querySelectorAll("input[name=selection]").forEach(function (r) {
    r.addEventListener("change", syncPanels);
  });
  syncPanels();

  var map = window[form.getAttribute("data-plan-map")];
  if (!map || typeof map.on !== "function") { return; }
  var points = form.querySelector("[name=points]");
  var layer = L.layerGroup().addTo(map);
  var ends = {};

  function numbered(la, lo, text, cls) {
    return L.marker([la, lo], {icon: L.divIcon({className: "", iconSize: [24, 24], iconAnchor: [12, 12],
      html: '<div class="patrol-num ' + (cls || "") + '">' + text + "</div>"})});
  }
  function redraw() {
    layer.clearLayers();
    points.value.split("\n").forEach(function (line, i) {
      var parts = line.split(",");
      var lo = parseFloat(parts[0]), la = parseFloat(parts[1]);
      if (isFinite(lo) && isFinite(la)) { numbered(la, lo, i + 1).addTo(layer); }
    });
    Object.keys(ends).forEach(function (k) { ends[k].addTo(layer); });
  }

  map.on("click", function (e) {
    var target = document.querySelector("input[name=click_target]:checked");
    var text = e.latlng.lng.toFixed(7) + "," + e.latlng.lat.toFixed(7);
    var kind = target ? target.value : "points";
    if (kind === "points") {
      var lines = points.value.split("\n").filter(function (l) { return l.trim(); });
      lines.push(text);
      points.value = lines.join("\n");
      var radio = form.querySelector("input[name=selection][value=points]");
      if (radio) { radio.checked = true; syncPanels(); }
    } else {
      form.querySelector("[name=" + kind + "]").value = text;
      ends[kind] = numbered(e.latlng.lat, e.latlng.lng, kind === "start" ? "起" : "终", "start");
    }
    redraw();
  });
  points.addEventListener("change", redraw);
  var clear = form.querySelector(".clear-points");
  if (clear) { clear.addEventListener("click", function () { points.value = ""; redraw(); }); }
  redraw();
})();
