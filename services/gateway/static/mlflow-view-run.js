// MLflow's client prints "View run ... at: <tracking URI>/#/experiments/<exp>/runs/<run>".
// The server never sees what follows '#', so this page reads it and goes to the same thing in
// Cairn's web UI: the run's page, or the runs table filtered to the experiment. Served as a
// same-origin file so the page's Content-Security-Policy needs no inline script.
(function () {
  var parts = location.pathname.split("/"); // ["", "mlflow", "<project>", ""]
  var project = decodeURIComponent(parts[2] || "");
  var base = "/projects/" + encodeURIComponent(project);
  // "#/experiments/1/runs/abc?workspace=x": the query part of the fragment is MLflow's own.
  var route = location.hash.replace(/^#\/?/, "").split("?")[0].split("/").map(decodeURIComponent);
  var target = base;
  if (route[0] === "experiments" && route[1]) {
    if (route[2] === "runs" && route[3]) {
      target = base + "/runs/" + encodeURIComponent(route[3]);
    } else if (route[1] === "0") {
      target = base + "/runs"; // MLflow's default experiment: Cairn's has an id of its own
    } else {
      var filter = "experiment_id = '" + route[1].replace(/\\/g, "\\\\").replace(/'/g, "\\'") + "'";
      target = base + "/runs?" + new URLSearchParams({ filter: filter }).toString();
    }
  }
  location.replace(target);
})();
