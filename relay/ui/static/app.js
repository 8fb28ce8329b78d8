// The dashboard's only script of its own (the CSP forbids inline script).
// Buttons with data-confirm ask before their form is sent.
document.addEventListener("submit", (event) => {
  const button = event.submitter;
  const message = (button && button.dataset.confirm) || event.target.dataset.confirm;
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
}, true);
