/* Draw every [data-chart] element from the JSON that json_script wrote beside it.
 *
 * <div class="chart" data-chart="trend"></div>
 * {{ figure|json_script:"trend" }}
 *
 * No inline scripts: the figure is data, this file is the only code. Runs on page
 * load and again on content that htmx swaps in (htmx.onLoad fires for both).
 *
 * CONFIG keeps the toolbar to what stays on the page: no plotly logo (a link to plotly.com), no
 * "Share chart..." button (it uploads the figure, revenue figures included, to Plotly's cloud; on by
 * default in plotly.js 4), no "Edit in Chart Studio" link, and no cloud address to send anything to.
 * Zoom, pan, autoscale and "Download plot as a png" (a local file) stay. sessions/tests/
 * test_browser_charts.py checks that the drawn toolbar has no element reaching outside.
 */
(function () {
  "use strict";

  var CONFIG = {
    responsive: true,
    displaylogo: false,
    showLink: false,
    showSendToCloud: false,
    showEditInChartStudio: false,
    plotlyServerURL: "",
    modeBarButtonsToRemove: ["sendChartToCloud", "sendDataToCloud", "editInChartStudio", "lasso2d", "select2d"],
  };

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
      window.Plotly.newPlot(el, figure.data || [], figure.layout || {}, CONFIG);
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
