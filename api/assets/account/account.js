// The account pages reached from links in emails: /account/verify-email and
// /account/reset-password. The link carries a one-time token in its fragment
// (#token=...), which browsers never send to the server, so fetching the page
// (a mail scanner's prefetch, say) consumes nothing: the token is spent only
// by the POST made when the person presses the button.
//
// Served under a CSP without 'unsafe-inline': no inline script or style, no
// event-handler attributes; every message is set with textContent.
"use strict";

(() => {
  const TOKEN = /^[A-Za-z0-9_-]{43}$/;
  const DAMAGED_LINK = "This link is incomplete or damaged. Copy the whole link from the email.";
  const USED_LINK = "This link has expired or was already used. Ask for a new one.";
  const UNREACHABLE = "Could not reach the server. Try again.";
  const GENERIC = "Something went wrong. Try again in a moment.";
  const MISMATCH = "The two passwords do not match.";
  const PASSWORD_CHANGED =
    "Your password is changed. Every session of your account was signed out; log in again with the new password.";

  const status = document.getElementById("status");

  /** Shows `message` in the live status element, styled by `kind`: "error", "success" or "info". */
  function show(message, kind) {
    status.textContent = message;
    status.classList.toggle("error", kind === "error");
    status.classList.toggle("success", kind === "success");
  }

  /** The token of the fragment if it is well formed, else null; the fragment is removed from the address bar either way. */
  function takeToken() {
    const fragment = location.hash.startsWith("#") ? location.hash.slice(1) : location.hash;
    const token = new URLSearchParams(fragment).get("token");
    if (location.hash !== "") {
      // Out of the address bar, the history entry and anything copied from them.
      history.replaceState(null, "", location.pathname);
    }
    return token !== null && TOKEN.test(token) ? token : null;
  }

  /** POSTs `payload` as JSON; resolves to the status and the parsed body (null when none). Rejects on network errors only. */
  async function postJson(path, payload) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
      cache: "no-store",
      credentials: "same-origin",
    });
    let body = null;
    if (response.status !== 204) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    return { ok: response.ok, status: response.status, body };
  }

  /** The `code` of a problem body, or null. */
  function problemCode(body) {
    return body !== null && typeof body === "object" && typeof body.code === "string" ? body.code : null;
  }

  /** The `detail` of a problem body, or `fallback`. */
  function problemDetail(body, fallback) {
    return body !== null && typeof body === "object" && typeof body.detail === "string" && body.detail !== ""
      ? body.detail
      : fallback;
  }

  function verifyEmail(token) {
    const button = document.getElementById("confirm");
    if (token === null) {
      button.hidden = true;
      show(DAMAGED_LINK, "error");
      return;
    }
    button.addEventListener("click", async () => {
      if (button.disabled) return;
      button.disabled = true;
      show("Confirming\u2026", "info");
      let result;
      try {
        result = await postJson("/api/v1/auth/email/verify", { token });
      } catch {
        show(UNREACHABLE, "error");
        button.disabled = false;
        return;
      }
      if (result.ok) {
        button.hidden = true;
        const email = result.body?.user?.email;
        show(
          typeof email === "string" && email !== ""
            ? `Your email address ${email} is confirmed. You can close this page.`
            : "Your email address is confirmed. You can close this page.",
          "success",
        );
        return;
      }
      if (problemCode(result.body) === "invalid_token") {
        button.hidden = true;
        show(USED_LINK, "error");
        return;
      }
      // Rate limits, an unavailable server...: worth another press.
      show(problemDetail(result.body, GENERIC), "error");
      button.disabled = false;
    });
  }

  function resetPassword(token) {
    const form = document.getElementById("reset");
    if (token === null) {
      form.hidden = true;
      show(DAMAGED_LINK, "error");
      return;
    }
    const newPassword = document.getElementById("new-password");
    const confirmPassword = document.getElementById("confirm-password");
    const secondFactor = document.getElementById("second-factor");
    const totpCode = document.getElementById("totp-code");
    const submit = document.getElementById("submit");

    /** The form is of no further use: clear the passwords out of the page and hide it. */
    function finish() {
      form.reset();
      form.hidden = true;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (submit.disabled) return;
      if (newPassword.value !== confirmPassword.value) {
        show(MISMATCH, "error");
        confirmPassword.focus();
        return;
      }
      const payload = { token, new_password: newPassword.value };
      const code = totpCode.value.trim();
      if (!secondFactor.hidden && code !== "") {
        // Six digits come from the app; anything longer is a recovery code.
        if (/^\d{6}$/.test(code.replace(/\s/g, ""))) payload.totp_code = code;
        else payload.recovery_code = code;
      }

      submit.disabled = true;
      show("Setting your new password\u2026", "info");
      let result;
      try {
        result = await postJson("/api/v1/auth/password/reset", payload);
      } catch {
        show(UNREACHABLE, "error");
        submit.disabled = false;
        return;
      }
      submit.disabled = false;
      if (result.ok) {
        finish();
        show(PASSWORD_CHANGED, "success");
        return;
      }
      switch (problemCode(result.body)) {
        case "invalid_token":
          finish();
          show(USED_LINK, "error");
          return;
        case "second_factor_required":
          secondFactor.hidden = false;
          show(problemDetail(result.body, "Enter the code from your authenticator app."), "info");
          totpCode.focus();
          return;
        default:
          // 422: the password policy's reason; the form stays for another try.
          show(problemDetail(result.body, GENERIC), "error");
      }
    });
  }

  const token = takeToken();
  switch (document.body.dataset.page) {
    case "verify-email":
      verifyEmail(token);
      break;
    case "reset-password":
      resetPassword(token);
      break;
    default:
      break;
  }
})();
