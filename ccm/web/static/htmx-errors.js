// htmx leaves 4xx answers unswapped; a form answered 422 (invalid) or 409 (conflict) carries the
// messages to show, so it is swapped like a success. A file of its own: the CSP allows no inline script.
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status;
  if (status === 422 || status === 409) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
