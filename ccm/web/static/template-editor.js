// The template editor's email previews: each is a sandboxed frame that the editor's form posts
// into (its own page, under its own CSP), refreshed a moment after typing stops and once on load.
// The rest of the preview is htmx (hx-trigger on the form).
//
// A form has one pending submission at a time (a second cancels the first), so the frames are
// posted one after another, each when the previous frame has loaded.
(function () {
  var DELAY = 400;

  function refresh(form, round) {
    var buttons = Array.prototype.slice.call(form.querySelectorAll("button[data-frame]"));
    function next(index) {
      if (index >= buttons.length || round !== form.dataset.round) {
        return;
      }
      var frame = document.querySelector('iframe[name="' + buttons[index].getAttribute("formtarget") + '"]');
      frame.addEventListener("load", function () { next(index + 1); }, { once: true });
      form.requestSubmit(buttons[index]);
    }
    next(0);
  }

  function start(form) {
    form.dataset.round = String(Number(form.dataset.round || "0") + 1);
    refresh(form, form.dataset.round);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("form[data-editor]");
    if (!form) {
      return;
    }
    var timer = null;
    form.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { start(form); }, DELAY);
    });
    start(form);
  });
})();
