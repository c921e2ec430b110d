// A confirmation spends render credits: a second click (or Enter) while the first request
// is on its way must not send it again. The button says what is happening instead.
(function () {
  "use strict";
  document.querySelectorAll("form").forEach(function (form) {
    const button = form.querySelector('button[data-action="confirm"]');
    if (!button) return;
    form.addEventListener("submit", function (event) {
      if (form.dataset.sent === "1") { event.preventDefault(); return; }
      form.dataset.sent = "1";
      button.setAttribute("aria-disabled", "true");
      button.textContent = "Requesting the renders…";
    });
  });
})();
