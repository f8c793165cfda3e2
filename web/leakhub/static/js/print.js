// Print buttons (the tag sheet): a button with data-print opens the browser's print dialog.
// A static file, no inline handler, so the Content-Security-Policy (script-src 'self') holds.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
