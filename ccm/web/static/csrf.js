// Sends the session's CSRF token (from the page's meta tag) with every htmx request, as the
// X-CSRF-Token header the server checks on unsafe methods. A file of its own: the CSP allows no inline script.
document.addEventListener("htmx:configRequest", function (event) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) {
    event.detail.headers["X-CSRF-Token"] = meta.content;
  }
});
