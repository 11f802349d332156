// The account page (/account): sign in (with the second step when the
// account has one) or create an account, then see the sessions, recent
// activity and two-step sign-in of the account, end other sessions, turn on
// an authenticator app (then make new recovery codes, or turn it off again),
// change the password and sign out.
//
// It is also an example client of the public JSON API: same origin, relative
// URLs, nothing else. The tokens live only in the `tokens` variable below
// (never in localStorage, sessionStorage or cookies) and the access token is
// sent only in the Authorization header; reloading the page signs out of the
// page (the session stays open on the server until it expires or is ended).
// When the access token has expired (401 with WWW-Authenticate), the refresh
// token is exchanged once for a new pair and the request retried; if that
// fails, the page goes back to the sign-in form.
//
// Served under a CSP without 'unsafe-inline': no inline script or style, no
// style or event-handler attributes; every text is set with textContent.
//
// Element ids (stable; the browser test uses them):
//   #signed-out          section: the forms shown while signed out
//     #sign-in-form        form: #email, #password, submit #sign-in,
//                          #show-sign-up (switches to the sign-up form)
//     #sign-up-form        form: #sign-up-email, #sign-up-password, submit
//                          #sign-up, #show-sign-in (back to signing in)
//     #mfa-form            form, the second step: #mfa-code (a 6-digit code or
//                          a recovery code), submit #mfa-submit, #mfa-cancel
//   #signed-in           section: shown while signed in
//     #signed-in-email     the account's email; #email-verified whether it is
//                          confirmed
//     #sign-out            button; #reload re-reads everything below
//     #sessions            ul: one li[data-session-id] per session, the current
//                          one with class "current"; the others hold a
//                          button.end-session ("End")
//     #events              ul: the 10 latest events, li[data-type][data-outcome]
//     #totp-state          text; data-state = "none" | "pending" | "active";
//                          while active it holds #codes-left, the number of
//                          recovery codes left (its text is the number)
//     #enrol-form          form: #enrol-password, submit #enrol-start
//     #confirm-form        form: img #totp-qr, code #totp-secret, #totp-code,
//                          submit #totp-confirm
//     #recovery            the new recovery codes: ol #recovery-codes,
//                          #recovery-done hides them
//     #totp-manage         shown only while TOTP is active:
//       #codes-form          form, new recovery codes: #codes-password,
//                            #codes-code (six digits are sent as totp_code,
//                            anything else as recovery_code), submit
//                            #codes-new; the codes appear in #recovery
//       #disable-form        form, turn TOTP off: #disable-password,
//                            #disable-code (as #codes-code), submit
//                            #totp-disable
//     #password-form       form: #current-password, #new-password, submit
//                          #change-password
//   #status              role=status, aria-live=polite: the latest message;
//                        class "error" or "success"
"use strict";

(() => {
  const UNREACHABLE = "Could not reach the server. Try again.";
  const GENERIC = "Something went wrong. Try again in a moment.";
  const SESSION_ENDED = "Your session has ended. Sign in again.";
  const SETTING_UP = "Being set up: enter a code from the app to turn it on.";

  const $ = (id) => document.getElementById(id);
  const status = $("status");

  /**
   * The token pair of the signed-in person: { access, refresh }, or null.
   * Memory only: it is gone when the page is closed or reloaded.
   */
  let tokens = null;
  /** The pending exchange of the refresh token, shared by concurrent requests. */
  let refreshing = null;
  /** The `mfa_token` of the second step, between the two forms. */
  let mfaToken = null;

  /** Shows `message` in the live status element, styled by `kind`: "error", "success" or "info". */
  function show(message, kind = "info") {
    status.textContent = message;
    status.classList.toggle("error", kind === "error");
    status.classList.toggle("success", kind === "success");
  }

  /** The `code` of a problem body, or null. */
  function problemCode(body) {
    return body !== null && typeof body === "object" && typeof body.code === "string" ? body.code : null;
  }

  /** The `detail` of a problem body, or `fallback`. */
  function problemDetail(body, fallback = GENERIC) {
    return body !== null && typeof body === "object" && typeof body.detail === "string" && body.detail !== ""
      ? body.detail
      : fallback;
  }

  /** A failure of a request: a network error, or a response that is not 2xx. */
  class ApiError extends Error {
    constructor(status, body) {
      super(status === 0 ? UNREACHABLE : problemDetail(body));
      this.status = status;
      this.body = body;
      this.code = problemCode(body);
    }
  }

  /** Thrown when the session is gone (refresh refused): the page is back at sign-in already. */
  class SignedOut extends Error {}

  /** One request; resolves to { status, headers, body } (body null when empty or not JSON). */
  async function send(method, path, payload, accessToken) {
    const headers = { accept: "application/json" };
    if (payload !== undefined) headers["content-type"] = "application/json";
    if (accessToken !== undefined) headers.authorization = `Bearer ${accessToken}`;
    let response;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: payload === undefined ? undefined : JSON.stringify(payload),
        cache: "no-store",
        credentials: "omit",
      });
    } catch {
      throw new ApiError(0, null);
    }
    let body = null;
    if (response.status !== 204) {
      try {
        body = await response.json();
      } catch {
        body = null;
      }
    }
    return { status: response.status, headers: response.headers, body };
  }

  /** A request without a token (sign-in, sign-up, second step); resolves to the body of a 2xx, else throws ApiError. */
  async function call(method, path, payload) {
    const result = await send(method, path, payload);
    if (result.status < 200 || result.status > 299) throw new ApiError(result.status, result.body);
    return result.body;
  }

  /** Exchanges the refresh token for a new pair once, however many requests are waiting for it. */
  function refreshTokens() {
    if (refreshing === null) {
      const refreshToken = tokens.refresh;
      refreshing = call("POST", "/api/v1/auth/refresh", { refresh_token: refreshToken })
        .then((pair) => {
          if (tokens !== null && tokens.refresh === refreshToken) keep(pair);
          return tokens !== null;
        })
        .catch(() => false)
        .finally(() => {
          refreshing = null;
        });
    }
    return refreshing;
  }

  /**
   * A request with the access token; on a 401 with WWW-Authenticate (the
   * token expired or was refused) refreshes once and retries. Resolves to the
   * body of a 2xx; throws ApiError, or SignedOut when the session is gone.
   */
  async function authed(method, path, payload) {
    if (tokens === null) throw new SignedOut();
    let token = tokens.access;
    let result = await send(method, path, payload, token);
    if (result.status === 401 && result.headers.has("www-authenticate")) {
      if (tokens === null) throw new SignedOut();
      // Another request may have refreshed meanwhile: then use its pair.
      const fresh = tokens.access !== token || (await refreshTokens());
      if (!fresh || tokens === null) {
        forget(SESSION_ENDED);
        throw new SignedOut();
      }
      token = tokens.access;
      result = await send(method, path, payload, token);
      if (result.status === 401 && result.headers.has("www-authenticate")) {
        forget(SESSION_ENDED);
        throw new SignedOut();
      }
    }
    if (result.status < 200 || result.status > 299) throw new ApiError(result.status, result.body);
    return result.body;
  }

  /** Shows the message of `error` unless it is SignedOut (the sign-in form says why already). */
  function report(error) {
    if (error instanceof SignedOut) return;
    show(error instanceof ApiError ? error.message : GENERIC, "error");
  }

  /** Disables `button` while `work` runs; one run at a time. */
  async function busy(button, work) {
    if (button.disabled) return;
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      report(error);
    } finally {
      button.disabled = false;
    }
  }

  // --- formatting ---------------------------------------------------------------

  const EVENT_NAMES = {
    signup: "Account created",
    login_succeeded: "Signed in",
    login_failed: "Sign-in failed",
    account_locked: "Account locked for a while",
    token_refreshed: "Session renewed",
    refresh_token_reuse_detected: "Reused session token: session ended",
    logout: "Signed out",
    session_revoked: "Session ended",
    rate_limit_hit: "Too many attempts",
    access_token_rejected: "Access refused",
    email_verified: "Email address confirmed",
    verification_email_sent: "Confirmation email sent",
    password_reset_requested: "Password reset asked for",
    password_reset_completed: "Password reset",
    password_changed: "Password changed",
    email_change_requested: "Email change asked for",
    email_changed: "Email address changed",
    account_deleted: "Account deleted",
    account_exported: "Account data exported",
    second_factor_required: "Second step asked for",
    second_factor_failed: "Second step failed",
    second_factor_enabled: "Two-step sign-in turned on",
    second_factor_disabled: "Two-step sign-in turned off",
    recovery_codes_regenerated: "New recovery codes made",
    recovery_code_used: "Recovery code used",
  };

  /** A `<time>` element for an RFC 3339 timestamp, in the reader's locale. */
  function timeElement(iso) {
    const element = document.createElement("time");
    element.dateTime = iso;
    const date = new Date(iso);
    element.textContent = Number.isNaN(date.getTime())
      ? iso
      : date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    return element;
  }

  /** A `<span>` of `text` with `className`. */
  function span(text, className) {
    const element = document.createElement("span");
    element.textContent = text;
    if (className) element.className = className;
    return element;
  }

  // --- views ----------------------------------------------------------------------

  const signedOut = $("signed-out");
  const signedIn = $("signed-in");
  const signInForm = $("sign-in-form");
  const signUpForm = $("sign-up-form");
  const mfaForm = $("mfa-form");
  const enrolForm = $("enrol-form");
  const confirmForm = $("confirm-form");
  const recovery = $("recovery");
  const totpManage = $("totp-manage");
  const codesForm = $("codes-form");
  const disableForm = $("disable-form");

  /** Shows one of the signed-out forms ("sign-in", "sign-up", "mfa") with its heading. */
  function showSignedOut(form) {
    signedIn.hidden = true;
    signedOut.hidden = false;
    signInForm.hidden = form !== "sign-in";
    signUpForm.hidden = form !== "sign-up";
    mfaForm.hidden = form !== "mfa";
    $("signed-out-heading").textContent =
      form === "sign-up" ? "Create an account" : form === "mfa" ? "Second step" : "Sign in";
  }

  /** Keeps a new token pair and its account. */
  function keep(pair) {
    tokens = { access: pair.access_token, refresh: pair.refresh_token };
    if (pair.user) showUser(pair.user);
  }

  /** Forgets the tokens and every trace of the account in the page; back to the sign-in form. */
  function forget(message, kind = "error") {
    tokens = null;
    mfaToken = null;
    for (const form of [signInForm, signUpForm, mfaForm, enrolForm, confirmForm, codesForm, disableForm, $("password-form")]) {
      form.reset();
    }
    for (const id of ["signed-in-email", "email-verified", "sessions", "events", "totp-state", "totp-secret", "recovery-codes"]) {
      $(id).replaceChildren();
    }
    $("totp-qr").removeAttribute("src");
    for (const field of document.querySelectorAll("input.username")) field.defaultValue = "";
    delete $("totp-state").dataset.state;
    confirmForm.hidden = true;
    recovery.hidden = true;
    totpManage.hidden = true;
    showSignedOut("sign-in");
    if (message) show(message, kind);
    else show("");
    $("email").focus();
  }

  /** The account's email, for the page and for password managers (the hidden username fields of the password forms). */
  function showUser(user) {
    $("signed-in-email").textContent = user.email;
    for (const field of document.querySelectorAll("input.username")) field.defaultValue = user.email;
    $("email-verified").textContent = user.email_verified ? "(confirmed)" : "(not confirmed yet: see the email we sent)";
  }

  function renderSessions(items) {
    const list = $("sessions");
    const rows = items.map((session) => {
      const row = document.createElement("li");
      row.dataset.sessionId = session.id;
      const about = document.createElement("div");
      about.className = "about";
      about.append(span(session.user_agent ?? "Unknown browser or app", "what"));
      const details = span("", "muted");
      if (session.client_ip) details.append(`from ${session.client_ip}, `);
      details.append("started ", timeElement(session.created_at), ", last used ", timeElement(session.last_used_at));
      about.append(details);
      row.append(about);
      if (session.current) {
        row.classList.add("current");
        about.prepend(span("This session", "badge"));
      } else {
        const end = document.createElement("button");
        end.type = "button";
        end.className = "end-session secondary";
        end.textContent = "End";
        end.setAttribute("aria-label", `End the session started ${timeElement(session.created_at).textContent}`);
        end.addEventListener("click", () =>
          busy(end, async () => {
            await authed("DELETE", `/api/v1/sessions/${encodeURIComponent(session.id)}`);
            show("Session ended.", "success");
            await loadSessions();
            await loadEvents();
          }),
        );
        row.append(end);
      }
      return row;
    });
    list.replaceChildren(...rows);
  }

  function renderEvents(items) {
    const rows = items.map((event) => {
      const row = document.createElement("li");
      row.dataset.type = event.type;
      row.dataset.outcome = event.outcome;
      const about = document.createElement("div");
      about.className = "about";
      const name = EVENT_NAMES[event.type] ?? event.type.replaceAll("_", " ");
      about.append(span(event.outcome === "failure" && !/fail/i.test(name) ? `${name} (failed)` : name, "what"));
      const details = span("", "muted");
      details.append(timeElement(event.occurred_at));
      if (event.client_ip) details.append(` from ${event.client_ip}`);
      about.append(details);
      row.append(about);
      return row;
    });
    if (rows.length === 0) {
      const none = document.createElement("li");
      none.append(span("Nothing yet.", "muted"));
      rows.push(none);
    }
    $("events").replaceChildren(...rows);
  }

  function renderMfa(mfa) {
    const state = $("totp-state");
    state.dataset.state = mfa.totp;
    if (mfa.totp === "active") {
      const left = document.createElement("strong");
      left.id = "codes-left";
      left.textContent = String(mfa.recovery_codes_left);
      state.replaceChildren("Active: signing in asks for a code from your authenticator app. Recovery codes left: ", left, ".");
      if (mfa.recovery_codes_left <= 3) state.append(" Running low: make new ones below.");
    } else if (mfa.totp === "pending" && !confirmForm.hidden) {
      state.textContent = SETTING_UP;
    } else if (mfa.totp === "pending") {
      state.textContent = "Not on yet: an authenticator app was being set up but never confirmed. Start again below.";
    } else {
      state.textContent = "Off: signing in needs only your password.";
    }
    enrolForm.hidden = mfa.totp === "active" || !confirmForm.hidden;
    totpManage.hidden = mfa.totp !== "active";
  }

  async function loadSessions() {
    renderSessions((await authed("GET", "/api/v1/sessions")).items ?? []);
  }

  async function loadEvents() {
    renderEvents((await authed("GET", "/api/v1/auth/events?limit=10")).items ?? []);
  }

  async function loadMfa() {
    renderMfa(await authed("GET", "/api/v1/users/me/mfa"));
  }

  async function loadMe() {
    showUser(await authed("GET", "/api/v1/users/me"));
  }

  /** Re-reads everything shown while signed in; reports the first failure. */
  async function loadAll() {
    const results = await Promise.allSettled([loadMe(), loadSessions(), loadEvents(), loadMfa()]);
    const failed = results.find((result) => result.status === "rejected");
    if (failed) report(failed.reason);
  }

  /** The second factor typed in a code field: six digits come from the app, anything else is a recovery code. */
  function secondFactor(typed) {
    const value = typed.trim();
    const digits = value.replace(/\s/g, "");
    return /^\d{6}$/.test(digits) ? { totp_code: digits } : { recovery_code: value };
  }

  /** Shows `codes` (new recovery codes) in #recovery with the note to store them. */
  function showRecoveryCodes(codes) {
    const items = codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    });
    $("recovery-codes").replaceChildren(...items);
    recovery.hidden = false;
  }

  /** Signed in with `pair`: shows the account. */
  async function enter(pair, message) {
    keep(pair);
    mfaToken = null;
    signInForm.reset();
    signUpForm.reset();
    mfaForm.reset();
    signedOut.hidden = true;
    signedIn.hidden = false;
    show(message, "success");
    $("signed-in-heading").focus();
    await loadAll();
  }

  // --- signed out ---------------------------------------------------------------

  $("show-sign-up").addEventListener("click", () => {
    $("sign-up-email").value = $("email").value;
    showSignedOut("sign-up");
    show("");
    $("sign-up-email").focus();
  });

  $("show-sign-in").addEventListener("click", () => {
    $("email").value = $("sign-up-email").value;
    showSignedOut("sign-in");
    show("");
    $("email").focus();
  });

  signInForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("sign-in"), async () => {
      show("Signing in\u2026");
      const credentials = { email: $("email").value.trim(), password: $("password").value };
      try {
        await enter(await call("POST", "/api/v1/auth/login", credentials), "Signed in.");
      } catch (error) {
        if (error instanceof ApiError && error.code === "mfa_required" && typeof error.body.mfa_token === "string") {
          mfaToken = error.body.mfa_token;
          $("password").value = "";
          showSignedOut("mfa");
          show("Enter the code from your authenticator app, or one of your recovery codes.");
          $("mfa-code").focus();
          return;
        }
        $("password").select();
        throw error;
      }
    });
  });

  signUpForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("sign-up"), async () => {
      show("Creating your account\u2026");
      const credentials = { email: $("sign-up-email").value.trim(), password: $("sign-up-password").value };
      await enter(
        await call("POST", "/api/v1/auth/signup", credentials),
        "Your account is created and you are signed in. We sent you an email to confirm the address.",
      );
    });
  });

  mfaForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("mfa-submit"), async () => {
      const payload = { mfa_token: mfaToken, ...secondFactor($("mfa-code").value) };
      show("Checking the code\u2026");
      try {
        await enter(await call("POST", "/api/v1/auth/mfa/verify", payload), "Signed in.");
      } catch (error) {
        if (error instanceof ApiError && error.code === "invalid_mfa_token") {
          // Used, expired or out of tries: the password again.
          mfaToken = null;
          mfaForm.reset();
          showSignedOut("sign-in");
          $("password").focus();
        } else {
          $("mfa-code").select();
        }
        throw error;
      }
    });
  });

  $("mfa-cancel").addEventListener("click", () => {
    mfaToken = null;
    mfaForm.reset();
    showSignedOut("sign-in");
    show("");
    $("password").focus();
  });

  // --- signed in ----------------------------------------------------------------

  $("sign-out").addEventListener("click", () =>
    busy($("sign-out"), async () => {
      show("Signing out\u2026");
      try {
        await authed("POST", "/api/v1/auth/logout");
      } catch (error) {
        if (error instanceof SignedOut) return;
        // The server could not be told; the tokens are forgotten anyway.
        forget("Signed out of this page; the server could not be told, so the session ends when it expires.");
        return;
      }
      forget("Signed out.", "success");
    }),
  );

  $("reload").addEventListener("click", () =>
    busy($("reload"), async () => {
      show("");
      await loadAll();
    }),
  );

  /** The image data URL of an SVG document (base64 of its UTF-8 bytes). */
  function svgDataUrl(svg) {
    let binary = "";
    for (const byte of new TextEncoder().encode(svg)) binary += String.fromCharCode(byte);
    return `data:image/svg+xml;base64,${btoa(binary)}`;
  }

  enrolForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("enrol-start"), async () => {
      show("Setting up\u2026");
      let enrolment;
      try {
        enrolment = await authed("POST", "/api/v1/users/me/mfa/totp", { current_password: $("enrol-password").value });
      } catch (error) {
        $("enrol-password").select();
        throw error;
      }
      enrolForm.reset();
      $("totp-qr").src = svgDataUrl(enrolment.qr_svg);
      $("totp-secret").textContent = enrolment.secret;
      recovery.hidden = true;
      enrolForm.hidden = true;
      confirmForm.hidden = false;
      $("totp-state").dataset.state = "pending";
      $("totp-state").textContent = SETTING_UP;
      show("Add the key to your authenticator app, then enter the code it shows.");
      $("totp-code").focus();
    });
  });

  confirmForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("totp-confirm"), async () => {
      show("Checking the code\u2026");
      let result;
      try {
        result = await authed("POST", "/api/v1/users/me/mfa/totp/confirm", {
          code: $("totp-code").value.replace(/\s/g, ""),
        });
      } catch (error) {
        $("totp-code").select();
        throw error;
      }
      confirmForm.reset();
      confirmForm.hidden = true;
      $("totp-qr").removeAttribute("src");
      $("totp-secret").replaceChildren();
      showRecoveryCodes(result.recovery_codes ?? []);
      show("Two-step sign-in is on. Store your recovery codes now.", "success");
      await Promise.all([loadMfa(), loadEvents()]);
    });
  });

  /**
   * POSTs the current password and the second factor typed in the fields
   * `#<prefix>-password` and `#<prefix>-code` to `path`; resolves to the
   * body. On a refusal selects the field at fault; when the factor is gone
   * meanwhile (another tab turned it off) re-reads the state.
   */
  async function withBothFactors(prefix, path) {
    const password = $(`${prefix}-password`);
    const code = $(`${prefix}-code`);
    try {
      return await authed("POST", path, { current_password: password.value, ...secondFactor(code.value) });
    } catch (error) {
      if (error instanceof ApiError && error.code === "wrong_password") password.select();
      else if (error instanceof ApiError && error.code === "no_second_factor") await loadMfa().catch(() => {});
      else code.select();
      throw error;
    }
  }

  codesForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("codes-new"), async () => {
      show("Making new recovery codes\u2026");
      const result = await withBothFactors("codes", "/api/v1/users/me/mfa/recovery-codes");
      codesForm.reset();
      disableForm.reset();
      showRecoveryCodes(result.recovery_codes ?? []);
      show("New recovery codes made; the old ones no longer work. Store the new ones now.", "success");
      await Promise.all([loadMfa(), loadEvents()]);
    });
  });

  disableForm.addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("totp-disable"), async () => {
      show("Turning off two-step sign-in\u2026");
      await withBothFactors("disable", "/api/v1/users/me/mfa/totp/disable");
      codesForm.reset();
      disableForm.reset();
      // The recovery codes stopped working with the factor.
      $("recovery-codes").replaceChildren();
      recovery.hidden = true;
      totpManage.hidden = true;
      show("Two-step sign-in is off; your other sessions were signed out.", "success");
      // The button pressed is gone: keep the focus in this panel.
      $("mfa-heading").focus();
      await Promise.all([loadMfa(), loadSessions(), loadEvents()]);
    });
  });

  $("recovery-done").addEventListener("click", () => {
    $("recovery-codes").replaceChildren();
    recovery.hidden = true;
    show("");
  });

  $("password-form").addEventListener("submit", (event) => {
    event.preventDefault();
    busy($("change-password"), async () => {
      show("Changing your password\u2026");
      try {
        await authed("POST", "/api/v1/users/me/password", {
          current_password: $("current-password").value,
          new_password: $("new-password").value,
        });
      } catch (error) {
        if (error instanceof ApiError && error.code === "wrong_password") $("current-password").select();
        else $("new-password").select();
        throw error;
      }
      $("password-form").reset();
      show("Password changed; other sessions were signed out.", "success");
      await Promise.all([loadSessions(), loadEvents()]);
    });
  });

  showSignedOut("sign-in");
})();
