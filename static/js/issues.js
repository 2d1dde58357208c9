/* Click-to-pick a point on a Folium map: fills the form's lon/lat (WGS-84) and shows a marker.
   A form names its map with data-pick-map="<folium map variable>". */
(function () {
  "use strict";

  function setup(form) {
    var map = window[form.getAttribute("data-pick-map")];
    if (!map || typeof map.on !== "function") { return; }
    var lon = form.querySelector("[name=lon]");
    var lat = form.querySelector("[name=lat]");
    var crs = form.querySelector("[name=crs]");
    var hint = form.querySelector(".pick-hint");
    var marker = null;

    function show(la, lo) {
      if (marker) { marker.setLatLng([la, lo]); return; }
      marker = L.circleMarker([la, lo], {radius: 9, color: "#b71c1c", weight: 3, fillOpacity: 0.4})
        .addTo(map);
    }

    map.on("click", function (e) {
      lon.value = e.latlng.lng.toFixed(7);
      lat.value = e.latlng.lat.toFixed(7);
      // The map draws WGS-84 layers, so a clicked point is WGS-84 whatever was chosen before.
      if (crs) { crs.value = "wgs84"; }
      if (hint) { hint.textContent = "已选位置: " + lon.value + ", " + lat.value; }
      show(e.latlng.lat, e.latlng.lng);
    });

    // Typed coordinates (WGS-84 only) also show where they are.
    [lon, lat].forEach(function (input) {
      if (input.type === "hidden") { return; }
      input.addEventListener("change", function () {
        var lo = parseFloat(lon.value), la = parseFloat(lat.value);
        if (isFinite(lo) && isFinite(la) && (!crs || crs.value === "wgs84")) { show(la, lo); }
      });
    });

    // Queue page: one map form shared by the listed problems; the radio picks which.
    var radios = document.querySelectorAll("input[name=pick_issue][form='" + form.id + "']");
    function sync() {
      radios.forEach(function (r) {
        if (r.checked) {
          form.action = r.getAttribute("data-action");
          form.querySelector("[name=version]").value = r.getAttribute("data-version");
        }
      });
    }
    radios.forEach(function (r) { r.addEventListener("change", sync); });
    if (radios.length) { sync(); }

    form.addEventListener("submit", function (e) {
      if (lon.type === "hidden" && !lon.value) {
        e.preventDefault();
        if (hint) { hint.textContent = "请先在地图上点击选择位置"; }
      }
    });
  }

  document.querySelectorAll("[data-pick-map]").forEach(setup);
})();
