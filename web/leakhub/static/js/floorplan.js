// Floor plan page: a click or tap on the plan places the chosen leak there. The position is
// sent as fractions 0..1 of the plan's width and height (the x/y fields of the pin form).
(function () {
  "use strict";
  var svg = document.getElementById("plan-svg");
  var form = document.getElementById("pin-form");
  if (!svg || !form) { return; }
  var box = svg.viewBox.baseVal;
  svg.addEventListener("click", function (ev) {
    var ctm = svg.getScreenCTM();
    if (!ctm || !box || !box.width || !box.height) { return; }
    var pt = svg.createSVGPoint();
    pt.x = ev.clientX;
    pt.y = ev.clientY;
    var p = pt.matrixTransform(ctm.inverse());
    var fx = (p.x - box.x) / box.width;
    var fy = (p.y - box.y) / box.height;
    if (fx < 0 || fx > 1 || fy < 0 || fy > 1) { return; }
    form.elements.x.value = fx.toFixed(5);
    form.elements.y.value = fy.toFixed(5);
    form.submit();
  });
})();
