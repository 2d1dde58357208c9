// Layer uploads on /grids/layers: send the file, then poll the import's progress until it
// ends with counts per kind or an error. Without JavaScript the form posts normally and the
// page shows the progress as of its loading.
(function () {
  "use strict";
  var box = document.getElementById("layer-job");
  var form = document.getElementById("layer-upload");
  if (!box) { return; }
  var stage = box.querySelector(".job-stage");
  var bar = box.querySelector(".job-bar");
  var result = box.querySelector(".job-result");
  var fileLabel = box.querySelector(".job-file");
  var labels = {
    boundary: "建成区边界", roads: "道路", pois: "兴趣点", buildings: "建筑",
    communities: "社区", subdistricts: "街道/乡镇", water: "河流水系", addresses: "门牌地址"
  };

  function item(text, cls) {
    var li = document.createElement("li");
    li.textContent = text;
    if (cls) { li.className = cls; }
    result.appendChild(li);
  }

  function show(job) {
    bar.value = job.fraction || 0;
    result.textContent = "";
    if (job.state === "done") {
      stage.textContent = "完成";
      Object.keys(job.layers || {}).forEach(function (kind) {
        item((labels[kind] || kind) + ": " + job.layers[kind] + " 个要素");
      });
      (job.warnings || []).forEach(function (w) { item("提醒: " + w, "muted"); });
      item("刷新页面查看图层列表", "muted");
      return true;
    }
    if (job.state === "error") {
      stage.textContent = "失败: " + job.error;
      box.classList.add("error");
      return true;
    }
    stage.textContent = job.stage || "导入中";
    return false;
  }

  function poll(url) {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) { if (!show(job)) { setTimeout(function () { poll(url); }, 1000); } })
      .catch(function () { stage.textContent = "无法读取进度，请刷新页面"; });
  }

  if (box.dataset.statusUrl && !/^(完成|失败)/.test(stage.textContent)) {
    poll(box.dataset.statusUrl);
  }
  if (!form || !window.fetch || !window.FormData) { return; }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var data = new FormData(form);
    var file = form.querySelector("input[type=file]").files[0];
    box.hidden = false;
    box.classList.remove("error");
    fileLabel.textContent = file ? file.name : "";
    stage.textContent = "上传中";
    bar.value = 0;
    result.textContent = "";
    fetch(form.action || window.location.pathname, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { Accept: "application/json" }
    }).then(function (r) { return r.json(); }).then(function (answer) {
      if (answer.error) { show({ state: "error", error: answer.error }); return; }
      history.replaceState(null, "", "?job=" + encodeURIComponent(answer.token));
      poll(answer.status_url);
    }).catch(function () { show({ state: "error", error: "上传失败，请重试" }); });
  });
}());
