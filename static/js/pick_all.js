// "Tick all" box of a table: ticks or clears every row box of the same form.
(function () {
  var all = document.getElementById("pick-all");
  if (!all) { return; }
  all.addEventListener("change", function () {
    var boxes = all.form ? all.form.querySelectorAll('input[type="checkbox"][name="issue_id"]')
      : document.querySelectorAll('input[type="checkbox"][name="issue_id"]');
    boxes.forEach(function (box) { box.checked = all.checked; });
  });
})();
