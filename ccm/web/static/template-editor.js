// The template editor's email previews: each is a sandboxed frame that the editor's form posts
// into (its own page, under its own CSP), refreshed a moment after typing stops and once on load.
// The rest of the preview is htmx (hx-trigger on the form).
(function () {
  var DELAY = 400;

  function refresh(form) {
    form.querySelectorAll("button[data-frame]").forEach(function (button) {
      form.requestSubmit(button);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-editor]");
    if (!form) {
      return;
    }
    var timer = null;
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { refresh(form); }, DELAY);
    });
    refresh(form);
  });
})();
