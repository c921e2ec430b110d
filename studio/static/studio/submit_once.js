// A form marked data-submit-once disables its submit buttons while it posts, so a double
// click sends one request (the server's per-form token makes a second post harmless anyway).
// Without JavaScript the form works the same; the buttons come back when the page is shown
// again from the back/forward cache.
(function () {
  "use strict";
  const forms = document.querySelectorAll("form[data-submit-once]");

  function buttons(form) {
    return form.querySelectorAll('button[type="submit"], input[type="submit"]');
  }

  forms.forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (form.getAttribute("aria-busy") === "true") {
        event.preventDefault(); // e.g. Enter pressed again in a field while posting
        return;
      }
      form.setAttribute("aria-busy", "true");
      // The submission has started: disabling its button now does not stop it.
      buttons(form).forEach(function (button) {
        button.disabled = true;
        if (button.dataset.busyLabel) {
          button.dataset.idleLabel = button.textContent;
          button.textContent = button.dataset.busyLabel;
        }
      });
    });
  });

  window.addEventListener("pageshow", function () {
    forms.forEach(function (form) {
      form.removeAttribute("aria-busy");
      buttons(form).forEach(function (button) {
        button.disabled = false;
        if (button.dataset.idleLabel) button.textContent = button.dataset.idleLabel;
      });
    });
  });
})();
