/* Draw every [data-chart] element from the JSON that json_script wrote beside it.
 *
 * <div class="chart" data-chart="trend"></div>
 * {{ figure|json_script:"trend" }}
 *
 * No inline scripts: the figure is data, this file is the only code. Runs on page
 * load and again on content that htmx swaps in (htmx.onLoad fires for both).
 */
(function () {
  "use strict";

  function draw(root) {
    if (!window.Plotly || !root || !root.querySelectorAll) {
      return;
    }
    var targets = root.matches && root.matches("[data-chart]") ? [root] : root.querySelectorAll("[data-chart]");
    Array.prototype.forEach.call(targets, function (el) {
      var source = document.getElementById(el.dataset.chart);
      if (!source) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(el, figure.data || [], figure.layout || {}, {
        responsive: true,
        displaylogo: false,
        modeBarButtonsToRemove: ["lasso2d", "select2d"],
      });
    });
  }

  if (window.htmx) {
    window.htmx.onLoad(draw);
  } else {
    document.addEventListener("DOMContentLoaded", function () {
      draw(document);
    });
  }
})();
