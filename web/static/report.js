// The report's Print button (the page's CSP allows no inline script).
(function () {
  "use strict";
  const button = document.getElementById("print-report");
  if (button) button.addEventListener("click", function () { window.print(); });
})();
