// Multi-select test lists (templates/sessions/operate/chosen_tests_form.html): "choose all on this page" and
// the count on the Run button. The checkboxes point to their form with form="…", so htmx and a plain post
// both send the ticked ids; this file only adds comfort, the page works without it.
(function () {
  "use strict";

  function boxes(formId) {
    return Array.from(document.querySelectorAll('input.chosen-box[form="' + formId + '"]'));
  }

  function refresh(form) {
    const all = boxes(form.id);
    const ticked = all.filter(function (box) { return box.checked; }).length;
    const label = form.querySelector("[data-chosen-label]");
    if (label) label.textContent = "Run chosen tests (" + ticked + ")";
    const run = form.querySelector("[data-chosen-run]");
    if (run) run.disabled = ticked === 0;
    const chooseAll = form.querySelector("[data-choose-all]");
    if (chooseAll) {
      chooseAll.checked = all.length > 0 && ticked === all.length;
      chooseAll.indeterminate = ticked > 0 && ticked < all.length;
    }
  }

  function refreshAll() {
    document.querySelectorAll("form[data-chosen-tests]").forEach(refresh);
  }

  document.addEventListener("change", function (event) {
    const target = event.target;
    if (!(target instanceof HTMLInputElement)) return;
    if (target.dataset.chooseAll) {
      boxes(target.dataset.chooseAll).forEach(function (box) { box.checked = target.checked; });
      const form = document.getElementById(target.dataset.chooseAll);
      if (form) refresh(form);
    } else if (target.classList.contains("chosen-box") && target.form) {
      refresh(target.form);
    }
  });
  document.addEventListener("htmx:afterSwap", refreshAll);  // a new page of results: new boxes
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", refreshAll);
  } else {
    refreshAll();
  }
})();
