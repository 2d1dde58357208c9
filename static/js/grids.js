/* Cell picker for the grid assignment page: clicking a cell toggles its code in a hidden input. */
(function () {
  "use strict";
  function init() {
    var form = document.getElementById("cell-picker");
    if (!form) { return; }
    var layer = window[form.dataset.layer];
    var input = document.getElementById(form.dataset.input);
    var count = document.getElementById("picked-count");
    var list = document.getElementById("picked-list");
    if (!layer || !input) { return; }
    var picked = {};
    var byCode = {};

    function refresh() {
      var codes = Object.keys(picked).sort();
      input.value = codes.join(",");
      count.textContent = codes.length;
      list.textContent = codes.slice(0, 30).join("、") + (codes.length > 30 ? " …" : "");
    }

    layer.eachLayer(function (cell) {
      var code = cell.feature && cell.feature.properties.code;
      if (!code) { return; }
      byCode[code] = cell;
      cell.on("click", function (event) {
        if (picked[code]) {
          delete picked[code];
          layer.resetStyle(cell);
        } else {
          picked[code] = true;
          cell.setStyle({ fillColor: "#1565c0", fillOpacity: 0.85, color: "#0d47a1", weight: 2 });
        }
        refresh();
        if (window.L && L.DomEvent) { L.DomEvent.stopPropagation(event); }
      });
    });

    document.getElementById("picked-clear").addEventListener("click", function () {
      Object.keys(picked).forEach(function (code) { layer.resetStyle(byCode[code]); });
      picked = {};
      refresh();
    });
    form.addEventListener("submit", function (event) {
      if (!input.value) {
        event.preventDefault();
        alert("请先在地图上点击选择网格");
      }
    });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
