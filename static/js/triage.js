/* The five-whys editor: keep every other form of an analysis (or of the signature) current after an edit.
 *
 * An edit swaps only the part of the page it changed (the why list, the fields, the fixes, the status
 * menu), so whatever is typed elsewhere stays. Every form carries the version it was rendered with, and
 * the server refuses a stale one (409). After a successful edit the server says, in an HX-Trigger event,
 * which version it started from and which it wrote: the forms still at the starting version saw
 * everything there was, so they move to the new one. A form at any other version is left alone, and its
 * next save is refused with the newer text, as it should be: nobody else's edit is overwritten.
 *
 *   loopdash:analysis-saved  {analysis, from, to, status}   an analysis's forms; its article's status class
 *   loopdash:signature-saved {signature, from, to}           the title form beside the status menu
 *
 * No inline code: the page's Content-Security-Policy allows scripts from this site only.
 */
(function () {
  "use strict";

  var STATUSES = ["hypothesis", "confirmed", "refuted"];

  function bump(inputs, from, to) {
    Array.prototype.forEach.call(inputs, function (input) {
      if (input.value === String(from)) {
        input.value = String(to);
      }
    });
  }

  document.addEventListener("loopdash:analysis-saved", function (event) {
    var detail = event.detail || {};
    var article = document.getElementById("analysis-" + detail.analysis);
    if (!article) {
      return;
    }
    bump(article.querySelectorAll('input[name="version"]'), detail.from, detail.to);
    article.setAttribute("data-version", String(detail.to));
    if (STATUSES.indexOf(detail.status) >= 0) {
      STATUSES.forEach(function (name) {
        article.classList.remove(name);
      });
      article.classList.add(detail.status);
    }
  });

  document.addEventListener("loopdash:signature-saved", function (event) {
    var detail = event.detail || {};
    var selector = 'input[name="version"][data-signature="' + String(Number(detail.signature)) + '"]';
    bump(document.querySelectorAll(selector), detail.from, detail.to);
  });
})();
