// The segment builder's live errors: the preview answers {"rules-errors": {"errors": {control id:
// message}}} in its HX-Trigger header; each message goes in the slot next to its control
// (err-<id>), which is marked aria-invalid. Slots of controls no longer on the page are skipped.
document.addEventListener("rules-errors", function (event) {
  var errors = (event.detail && event.detail.errors) || {};
  document.querySelectorAll("#builder .field-error").forEach(function (slot) {
    var id = slot.id.slice("err-".length);
    var message = errors[id] || "";
    var control = document.getElementById(id);
    slot.textContent = message;
    if (control && message) {
      control.setAttribute("aria-invalid", "true");
    } else if (control) {
      control.removeAttribute("aria-invalid");
    }
  });
});
