// Progressive enhancement for the leak forms: a block marked
//   data-show-when="method=orifice,detector"
// is shown only while the form's field "method" has one of those values. Without JavaScript
// every block stays visible; the server validates what applies either way.
(function () {
  "use strict";
  function update(form) {
    form.querySelectorAll("[data-show-when]").forEach(function (el) {
      var rule = el.getAttribute("data-show-when").split("=");
      var field = form.elements.namedItem(rule[0]);
      if (!field) { return; }
      var wanted = rule[1].split(",");
      var show = wanted.indexOf(field.value) !== -1;
      el.hidden = !show;
      el.querySelectorAll("input, select, textarea").forEach(function (input) {
        input.disabled = !show && input.type !== "hidden";
      });
    });
  }
  document.querySelectorAll("form[data-conditional]").forEach(function (form) {
    update(form);
    form.addEventListener("change", function () { update(form); });
  });
})();
