// The account page at /account, used as a person would in headless Debian
// Chromium: create an account through the page; see the email and the
// session; turn on an authenticator app (the test computes the TOTP codes
// from the secret the page shows) and get 10 recovery codes; sign out; sign
// in on a second browser with the password and a recovery code; sign in again
// on the first with the password, a wrong code, then the code of the next time
// step; see both sessions and end the other one, after which the second
// browser's next request fails to refresh and drops back to the sign-in form;
// an expired access token is refreshed once and the request retried; change
// the password; make new recovery codes with the password and an unused
// recovery code (after a spent one is refused), sign in on the second browser
// with one of the new codes, then turn two-step sign-in off with the password
// and another new code (after a malformed one is refused), which signs the
// second browser's session out. Throughout: tokens only in memory and only in
// the Authorization header (nothing in localStorage, sessionStorage or
// cookies), no console errors, no CSP violations, no inline styles or
// handlers.
//
// Usage: PORTCULLIS_URL=http://127.0.0.1:8080 node account-app.test.mjs
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default
// ../ci-artifacts/account-app.png, relative to this file).

import { createHmac, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const baseUrl = process.env.PORTCULLIS_URL?.replace(/\/+$/, "");
if (!baseUrl) throw new Error("PORTCULLIS_URL is not set");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = resolve(process.env.SCREENSHOT ?? resolve(here, "../ci-artifacts/account-app.png"));
const TIMEOUT = 20_000;

const consoleErrors = [];
const failedRequests = [];
let step = "launch";
// Chromium logs "Failed to load resource: the server responded with a status
// of 4xx" for a fetch that the page expects to fail; the step that expects
// some names their API paths (with any query) here.
let expectedFailures = [];

function check(condition, what) {
  if (!condition) throw new Error(`${step}: ${what}`);
}

const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/** A passphrase of 20+ characters that the password policy accepts for `email`. */
function passphrase(email) {
  const words = ["meadow", "lantern", "copper", "harbour", "thistle", "orbit", "saffron", "glacier"];
  const pick = () => words[randomBytes(1)[0] % words.length];
  const phrase = `${pick()} ${randomBytes(5).toString("hex")} ${pick()} ${randomBytes(4).toString("hex")} ${pick()}`;
  const lowered = phrase.toLowerCase();
  if (phrase.length < 20 || lowered.includes("portcullis") || lowered.includes(email.split("@")[0])) {
    return passphrase(email);
  }
  return phrase;
}

// --- TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps) ------------------------

/** The bytes of an RFC 4648 base32 string (padding and spaces ignored). */
function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const bytes = [];
  for (const char of text.replace(/[=\s]/g, "").toUpperCase()) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${text}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The time step of `ms` (default now). */
const timeStep = (ms = Date.now()) => Math.floor(ms / 1000 / 30);

/** The 6-digit code of `secret` (base32) for time step `counter`. */
function totp(secret, counter) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", base32Decode(secret)).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, "0");
}

// --- the browser ---------------------------------------------------------------

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

/** Token strings seen in API responses: they may appear only in Authorization headers (and the refresh body). */
const accessTokens = new Set();
const refreshTokens = new Set();
/** Every API request of both pages: { page, method, path, authorization, body }. */
const apiRequests = [];

/** A page in a fresh browser context, watched for console errors, CSP violations and failed requests. */
async function openPage(label) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  // CSP violations are console errors in Chromium already; the event names the directive too.
  await context.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (event) =>
      console.error(`CSP violation: ${event.violatedDirective} blocked ${event.blockedURI || "inline"}`),
    );
  });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const url = msg.location().url;
    if (
      url.startsWith(`${baseUrl}/api/`) &&
      expectedFailures.includes(url.slice(baseUrl.length)) &&
      /^Failed to load resource: the server responded with a status of 4\d\d\b/.test(msg.text())
    ) {
      return;
    }
    consoleErrors.push(`${label} ${step}: ${msg.text()} (${url})`);
  });
  page.on("pageerror", (error) => consoleErrors.push(`${label} ${step}: uncaught ${error.message}`));
  page.on("request", (request) => {
    if (!request.url().startsWith(`${baseUrl}/api/`)) return;
    apiRequests.push({
      page: label,
      step,
      method: request.method(),
      path: request.url().slice(baseUrl.length),
      authorization: request.headers().authorization ?? null,
      cookie: request.headers().cookie ?? null,
      body: request.postData() ?? "",
    });
  });
  page.on("response", async (response) => {
    const url = response.url();
    if (response.status() >= 400 && !url.startsWith(`${baseUrl}/api/`)) {
      consoleErrors.push(`${label} ${step}: ${response.status()} for ${url}`);
    }
    if (url.startsWith(`${baseUrl}/api/`) && response.ok() && response.request().method() === "POST") {
      try {
        const body = await response.json();
        if (typeof body?.access_token === "string") accessTokens.add(body.access_token);
        if (typeof body?.refresh_token === "string") refreshTokens.add(body.refresh_token);
      } catch {
        // Not JSON (204, say): no tokens.
      }
    }
  });
  page.on("requestfailed", (request) =>
    failedRequests.push(`${label} ${step}: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
  );
  return { context, page };
}

/** Waits until `page`'s #status contains `expected`; resolves to its text. */
async function waitForStatus(page, expected) {
  const status = page.locator("#status");
  const deadline = Date.now() + TIMEOUT;
  let shown = "";
  while (Date.now() < deadline) {
    shown = (await status.textContent()) ?? "";
    if (shown.includes(expected)) return shown;
    await sleep(100);
  }
  check(false, `#status never showed "${expected}"; it shows "${shown}"`);
}

/** Waits until `probe()` is truthy; `what` names it in the failure. */
async function waitUntil(probe, what) {
  const deadline = Date.now() + TIMEOUT;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await sleep(100);
  }
  check(false, `${what} after ${TIMEOUT} ms`);
}

/** The session ids listed in `page`'s #sessions, the current one marked with "*". */
const listedSessions = (page) =>
  page
    .locator("#sessions > li")
    .evaluateAll((rows) => rows.map((row) => `${row.dataset.sessionId}${row.classList.contains("current") ? "*" : ""}`));

/** Checks `page` for storage of any kind, and for inline styles and event-handler attributes. */
async function checkPageHygiene(page, context, label) {
  const found = await page.evaluate(() => ({
    localStorage: localStorage.length,
    sessionStorage: sessionStorage.length,
    cookie: document.cookie,
    styled: document.querySelectorAll("[style]").length,
    styleElements: document.querySelectorAll("style").length,
    handlers: [...document.querySelectorAll("*")].flatMap((element) =>
      [...element.attributes].filter((attribute) => /^on/i.test(attribute.name)).map((a) => `${element.tagName} ${a.name}`),
    ),
  }));
  check(found.localStorage === 0, `${label}: localStorage holds ${found.localStorage} items`);
  check(found.sessionStorage === 0, `${label}: sessionStorage holds ${found.sessionStorage} items`);
  check(found.cookie === "", `${label}: document.cookie is "${found.cookie}"`);
  check((await context.cookies()).length === 0, `${label}: the browser holds cookies`);
  check(found.styled === 0 && found.styleElements === 0, `${label}: inline styles (${found.styled} attributes, ${found.styleElements} elements)`);
  check(found.handlers.length === 0, `${label}: event-handler attributes: ${found.handlers.join(", ")}`);
}

let exitCode = 0;
const first = await openPage("first");
const second = await openPage("second");
const page = first.page;

try {
  step = "load /account";
  const response = await page.goto(`${baseUrl}/account`, { waitUntil: "load" });
  check(response?.status() === 200, `status ${response?.status()}`);
  const headers = response.headers();
  check(/^text\/html\b/i.test(headers["content-type"] ?? ""), `content-type ${headers["content-type"]}`);
  const csp = headers["content-security-policy"] ?? "";
  check(
    /default-src 'none'/.test(csp) && /script-src 'self'(;|$)/.test(csp) && /style-src 'self'(;|$)/.test(csp),
    `content-security-policy is "${csp}"`,
  );
  check(/img-src [^;]*data:/.test(csp), `the CSP does not allow the data: QR image: "${csp}"`);
  check(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), `the CSP allows unsafe sources: "${csp}"`);
  check((await page.title()) === "Your account \u00b7 Portcullis", `title is "${await page.title()}"`);
  check(await page.locator("#sign-in").isVisible(), "#sign-in is not shown");
  check(!(await page.locator("#signed-in").isVisible()), "#signed-in is shown before signing in");
  for (const path of ["/account/", "/account/assets/app.js", "/account/assets/account.css"]) {
    const asset = await fetch(`${baseUrl}${path}`);
    check(asset.status === 200, `${path}: status ${asset.status}`);
  }
  const script = await fetch(`${baseUrl}/account/assets/app.js`);
  check(/^text\/javascript\b/i.test(script.headers.get("content-type") ?? ""), `app.js content-type ${script.headers.get("content-type")}`);
  check(apiRequests.length === 0, `loading the page called the API: ${apiRequests.map((r) => r.path).join(", ")}`);
  console.log("account-app: /account loaded with a strict CSP (img-src data:), no API calls; /account/ and the assets 200");

  step = "create an account";
  const email = `app-${randomBytes(6).toString("hex")}@example.com`;
  const password = passphrase(email);
  await page.locator("#show-sign-up").click();
  await page.locator("#sign-up-email").fill(email);
  await page.locator("#sign-up-password").fill(password);
  await page.locator("#sign-up").click();
  await page.locator("#signed-in").waitFor();
  await waitUntil(async () => (await page.locator("#signed-in-email").textContent()) === email, `#signed-in-email is not ${email}`);
  await waitUntil(async () => (await listedSessions(page)).length >= 1, "no session listed");
  const firstSessions = await listedSessions(page);
  check(firstSessions.filter((id) => id.endsWith("*")).length === 1, `no single current session: ${firstSessions}`);
  await waitUntil(async () => (await page.locator("#events > li[data-type='signup']").count()) === 1, "no signup event listed");
  check((await page.locator("#totp-state").getAttribute("data-state")) === "none", "#totp-state is not none");
  console.log(`account-app: created ${email}; signed in, ${firstSessions.length} session listed, signup event shown`);

  step = "enrol TOTP";
  await page.locator("#enrol-password").fill(password);
  await page.locator("#enrol-start").click();
  await page.locator("#totp-secret").waitFor();
  await waitUntil(async () => ((await page.locator("#totp-secret").textContent()) ?? "").trim() !== "", "#totp-secret stays empty");
  const secret = (await page.locator("#totp-secret").textContent()).trim();
  check(/^[A-Z2-7]{16,}=*$/.test(secret), `#totp-secret is not base32: ${secret}`);
  const qrSrc = (await page.locator("#totp-qr").getAttribute("src")) ?? "";
  check(qrSrc.startsWith("data:image/svg+xml;base64,"), `#totp-qr src is ${qrSrc.slice(0, 40)}`);
  check(((await page.locator("#totp-qr").getAttribute("alt")) ?? "") !== "", "#totp-qr has no alt text");
  await waitUntil(
    () => page.locator("#totp-qr").evaluate((img) => img.complete && img.naturalWidth > 0),
    "the QR image did not render",
  );
  const confirmStep = timeStep();
  await page.locator("#totp-code").fill(totp(secret, confirmStep));
  await page.locator("#totp-confirm").click();
  await waitUntil(async () => (await page.locator("#recovery-codes > li").count()) === 10, "10 recovery codes are not listed");
  const recoveryCodes = await page.locator("#recovery-codes > li").allTextContents();
  check(new Set(recoveryCodes).size === 10 && recoveryCodes.every((code) => code.trim().length >= 8), `recovery codes: ${recoveryCodes}`);
  check(await page.locator("#recovery").isVisible(), "the recovery codes are not shown");
  await waitUntil(async () => (await page.locator("#totp-state").getAttribute("data-state")) === "active", "#totp-state is not active");
  check((await page.locator("#totp-state").textContent()).includes("Active"), `#totp-state says "${await page.locator("#totp-state").textContent()}"`);
  check(!(await page.locator("#enrol-form").isVisible()), "the enrol form is still shown");
  console.log(`account-app: TOTP enrolled (secret from #totp-secret, QR rendered), 10 recovery codes listed, state active`);

  step = "sign out";
  await page.locator("#sign-out").click();
  await waitForStatus(page, "Signed out.");
  await page.locator("#sign-in").waitFor();
  check(!(await page.locator("#signed-in").isVisible()), "#signed-in is still shown");
  check((await page.locator("#recovery-codes > li").count()) === 0, "the recovery codes are still in the page");
  check((await page.locator("#signed-in-email").textContent()) === "", "the email is still in the page");
  const logout = apiRequests.filter((r) => r.page === "first" && r.path === "/api/v1/auth/logout");
  check(logout.length === 1 && logout[0].authorization?.startsWith("Bearer "), "no POST /api/v1/auth/logout with a bearer token");
  console.log("account-app: signed out; the page forgot the account");

  step = "second browser: password and recovery code";
  await second.page.goto(`${baseUrl}/account`, { waitUntil: "load" });
  await second.page.locator("#email").fill(email);
  await second.page.locator("#password").fill(password);
  expectedFailures = ["/api/v1/auth/login"];
  await second.page.locator("#sign-in").click();
  await second.page.locator("#mfa-code").waitFor();
  expectedFailures = [];
  await second.page.locator("#mfa-code").fill(recoveryCodes[0]);
  await second.page.locator("#mfa-submit").click();
  await second.page.locator("#signed-in").waitFor();
  await waitUntil(
    async () => ((await second.page.locator("#totp-state").textContent()) ?? "").includes("Recovery codes left: 9"),
    "the second browser does not show 9 recovery codes left",
  );
  const recoveryVerify = apiRequests.find((r) => r.page === "second" && r.path === "/api/v1/auth/mfa/verify");
  check(JSON.parse(recoveryVerify.body).recovery_code === recoveryCodes[0], "the recovery code was not sent as recovery_code");
  console.log("account-app: second browser signed in with the password and a recovery code (9 left)");

  step = "wrong password";
  await page.locator("#email").fill(email);
  await page.locator("#password").fill(`${password} nope`);
  expectedFailures = ["/api/v1/auth/login"];
  await page.locator("#sign-in").click();
  await waitForStatus(page, "incorrect");
  check(await page.locator("#sign-in").isVisible(), "the password form is gone after a wrong password");
  console.log("account-app: a wrong password shows the problem's detail");

  step = "sign in with the password";
  await page.locator("#password").fill(password);
  await page.locator("#sign-in").click();
  await page.locator("#mfa-code").waitFor();
  check(!(await page.locator("#sign-in-form").isVisible()), "the password form is still shown at the second step");
  const label = await page.locator("label[for='mfa-code']").textContent();
  check(label.includes("authenticator app") && label.includes("recovery code"), `#mfa-code label is "${label}"`);
  console.log("account-app: the right password leads to the second step");

  step = "wrong code";
  const near = new Set([-1, 0, 1, 2].map((delta) => totp(secret, timeStep() + delta)));
  let wrong = "123456";
  while (near.has(wrong)) wrong = String((Number(wrong) + 1) % 1_000_000).padStart(6, "0");
  expectedFailures = ["/api/v1/auth/mfa/verify"];
  await page.locator("#mfa-code").fill(wrong);
  await page.locator("#mfa-submit").click();
  await waitForStatus(page, "wrong");
  check(await page.locator("#mfa-code").isVisible(), "the second step is gone after a wrong code");
  expectedFailures = [];
  console.log("account-app: a wrong code shows the detail; the second step stays for a retry");

  step = "code of the next time step";
  // The confirmation spent the code of its step; one step of drift is accepted.
  const nextStep = Math.max(timeStep() + 1, confirmStep + 1);
  const code = totp(secret, nextStep);
  await page.locator("#mfa-code").fill(`${code.slice(0, 3)} ${code.slice(3)}`);
  await page.locator("#mfa-submit").click();
  await page.locator("#signed-in").waitFor();
  await waitUntil(async () => (await page.locator("#signed-in-email").textContent()) === email, "#signed-in-email is wrong");
  const lastVerify = apiRequests.filter((r) => r.page === "first" && r.path === "/api/v1/auth/mfa/verify").at(-1);
  check(JSON.parse(lastVerify.body).totp_code === code, `the code was not sent as totp_code without spaces: ${lastVerify.body}`);
  console.log("account-app: the code of the next time step (typed with a space) signed in");

  step = "sessions";
  await waitUntil(async () => (await listedSessions(page)).length >= 2, "fewer than 2 sessions listed");
  const sessions = await listedSessions(page);
  check(sessions.filter((id) => id.endsWith("*")).length === 1, `not exactly one current session: ${sessions}`);
  check(!sessions.some((id) => firstSessions.includes(id.replace("*", ""))), "the signed-out session is still listed");
  const other = page.locator("#sessions > li:not(.current)").first();
  const otherId = await other.getAttribute("data-session-id");
  check((await page.locator("#sessions > li.current button").count()) === 0, "the current session has a button");
  console.log(`account-app: ${sessions.length} sessions listed, exactly one current`);

  step = "end the other session";
  await other.locator("button.end-session").click();
  await waitForStatus(page, "Session ended.");
  await waitUntil(async () => !(await listedSessions(page)).some((id) => id.startsWith(otherId)), `session ${otherId} is still listed`);
  const ended = apiRequests.filter((r) => r.method === "DELETE" && r.path === `/api/v1/sessions/${otherId}`);
  check(ended.length === 1, `DELETE /api/v1/sessions/${otherId} sent ${ended.length} times`);
  console.log(`account-app: ended session ${otherId}; it is gone from the list`);

  step = "second browser: ended session";
  // Its access token is refused (401 + WWW-Authenticate); its refresh token too: back to sign-in.
  expectedFailures = [
    "/api/v1/users/me",
    "/api/v1/sessions",
    "/api/v1/auth/events?limit=10",
    "/api/v1/users/me/mfa",
    "/api/v1/auth/refresh",
  ];
  const secondRefreshesBefore = apiRequests.filter((r) => r.page === "second" && r.path === "/api/v1/auth/refresh").length;
  await second.page.locator("#reload").click();
  await second.page.locator("#sign-in").waitFor();
  await waitForStatus(second.page, "Sign in again");
  check(!(await second.page.locator("#signed-in").isVisible()), "the second browser still shows the account");
  const secondRefreshes = apiRequests.filter((r) => r.page === "second" && r.path === "/api/v1/auth/refresh").length - secondRefreshesBefore;
  check(secondRefreshes === 1, `the second browser tried ${secondRefreshes} refreshes, not 1`);
  expectedFailures = [];
  console.log("account-app: the ended session's browser refreshed once, was refused, and went back to sign-in");

  step = "refresh an expired access token";
  // The next GET /api/v1/sessions answers as for an expired token.
  let faked = null;
  await page.route(`${baseUrl}/api/v1/sessions`, async (route) => {
    if (faked !== null || route.request().method() !== "GET") return route.fallback();
    faked = route.request().headers().authorization;
    await route.fulfill({
      status: 401,
      headers: { "www-authenticate": 'Bearer error="invalid_token"', "content-type": "application/problem+json" },
      body: JSON.stringify({ code: "invalid_token", detail: "A valid bearer access token is required.", status: 401 }),
    });
  });
  expectedFailures = ["/api/v1/sessions"];
  const mark = apiRequests.length;
  await page.locator("#reload").click();
  await waitUntil(
    () => apiRequests.slice(mark).filter((r) => r.path === "/api/v1/sessions").length === 2,
    "GET /api/v1/sessions was not retried",
  );
  await waitUntil(async () => !(await page.locator("#reload").isDisabled()), "#reload stays busy");
  const after = apiRequests.slice(mark);
  const refreshes = after.filter((r) => r.path === "/api/v1/auth/refresh");
  check(refreshes.length === 1, `${refreshes.length} refreshes, not 1`);
  check(refreshes[0].authorization === null, "the refresh request carried an Authorization header");
  const retried = after.filter((r) => r.path === "/api/v1/sessions")[1];
  check(retried.authorization !== faked, "the retry did not use the new access token");
  await page.unroute(`${baseUrl}/api/v1/sessions`);
  expectedFailures = [];
  check(await page.locator("#signed-in").isVisible(), "the page left the account after a refresh");
  check((await listedSessions(page)).length === 1, `sessions listed after the refresh: ${await listedSessions(page)}`);
  console.log("account-app: a 401 with WWW-Authenticate refreshed the pair once and retried with the new token");

  step = "change password";
  const newPassword = passphrase(email);
  expectedFailures = ["/api/v1/users/me/password"];
  await page.locator("#current-password").fill(`${password} nope`);
  await page.locator("#new-password").fill(newPassword);
  await page.locator("#change-password").click();
  await waitUntil(async () => (await page.locator("#status").getAttribute("class"))?.includes("error"), "no error for a wrong current password");
  expectedFailures = [];
  await page.locator("#current-password").fill(password);
  await page.locator("#new-password").fill(newPassword);
  await page.locator("#change-password").click();
  await waitForStatus(page, "Password changed; other sessions were signed out.");
  check((await page.locator("#current-password").inputValue()) === "", "the password fields were not cleared");
  console.log("account-app: a wrong current password is refused; the right one changes the password");

  step = "new recovery codes";
  // The latest password is newPassword; recoveryCodes[0] was spent by the second browser.
  await waitUntil(async () => (await page.locator("#codes-left").textContent()) === "9", "#codes-left does not say 9");
  check(((await page.locator("#totp-state").textContent()) ?? "").includes("Recovery codes left: 9"), "#totp-state does not say 9 left");
  check(await page.locator("#codes-form").isVisible(), "the new recovery codes form is not shown");
  check(await page.locator("#disable-form").isVisible(), "the form to turn two-step sign-in off is not shown");
  check(!(await page.locator("#recovery").isVisible()), "recovery codes are shown before any were made");
  expectedFailures = ["/api/v1/users/me/mfa/recovery-codes"];
  await page.locator("#codes-password").fill(newPassword);
  await page.locator("#codes-code").fill(recoveryCodes[0]);
  await page.locator("#codes-new").click();
  await waitForStatus(page, "The code is wrong, was already used, or has expired.");
  check((await page.locator("#status").getAttribute("class"))?.includes("error"), "a spent recovery code is not shown as an error");
  check((await page.locator("#recovery-codes > li").count()) === 0, "codes are listed after a refusal");
  expectedFailures = [];
  await page.locator("#codes-password").fill(newPassword);
  await page.locator("#codes-code").fill(recoveryCodes[1]);
  await page.locator("#codes-new").click();
  await waitForStatus(page, "New recovery codes made");
  await waitUntil(async () => (await page.locator("#recovery-codes > li").count()) === 10, "10 new recovery codes are not listed");
  const newCodes = await page.locator("#recovery-codes > li").allTextContents();
  check(new Set(newCodes).size === 10 && newCodes.every((code) => code.trim().length >= 8), `new recovery codes: ${newCodes}`);
  check(!newCodes.some((code) => recoveryCodes.includes(code)), "a new recovery code is one of the old ones");
  check(await page.locator("#recovery").isVisible(), "the new recovery codes are not shown");
  check(((await page.locator("#recovery .notice").textContent()) ?? "").includes("Store these recovery codes now"), "the note to store the codes is not shown");
  await waitUntil(async () => (await page.locator("#codes-left").textContent()) === "10", "#codes-left does not say 10");
  check(((await page.locator("#totp-state").textContent()) ?? "").includes("Recovery codes left: 10."), "#totp-state does not say 10 left");
  check((await page.locator("#codes-password").inputValue()) === "" && (await page.locator("#codes-code").inputValue()) === "", "the form was not cleared");
  const regenerated = apiRequests.filter((r) => r.page === "first" && r.method === "POST" && r.path === "/api/v1/users/me/mfa/recovery-codes");
  check(regenerated.length === 2, `POST /api/v1/users/me/mfa/recovery-codes sent ${regenerated.length} times, not 2`);
  const regeneratedBody = JSON.parse(regenerated[1].body);
  check(
    regeneratedBody.current_password === newPassword && regeneratedBody.recovery_code === recoveryCodes[1] && !("totp_code" in regeneratedBody),
    "the password and the recovery code were not sent as current_password and recovery_code",
  );
  console.log("account-app: a spent recovery code is refused; the password and an unused one make 10 new codes, shown once; 10 left");

  step = "second browser: a new recovery code";
  await second.page.locator("#email").fill(email);
  await second.page.locator("#password").fill(newPassword);
  expectedFailures = ["/api/v1/auth/login"];
  await second.page.locator("#sign-in").click();
  await second.page.locator("#mfa-code").waitFor();
  expectedFailures = [];
  await second.page.locator("#mfa-code").fill(newCodes[9]);
  await second.page.locator("#mfa-submit").click();
  await second.page.locator("#signed-in").waitFor();
  await waitUntil(async () => (await second.page.locator("#codes-left").textContent()) === "9", "the second browser does not show 9 codes left");
  await page.locator("#reload").click();
  await waitUntil(async () => (await listedSessions(page)).length === 2, "the first browser does not list 2 sessions");
  console.log("account-app: a new recovery code signed the second browser in (9 left); 2 sessions listed");

  step = "turn two-step sign-in off";
  expectedFailures = ["/api/v1/users/me/mfa/totp/disable"];
  await page.locator("#disable-password").fill(newPassword);
  // A malformed code is refused before anything is checked, so it does not
  // count toward the lockout of the test's one client address.
  await page.locator("#disable-code").fill("not a code");
  await page.locator("#totp-disable").click();
  await waitForStatus(page, "The code is wrong, was already used, or has expired.");
  check((await page.locator("#totp-state").getAttribute("data-state")) === "active", "a malformed code turned two-step sign-in off");
  check(await page.locator("#totp-manage").isVisible(), "the forms went away after a refusal");
  expectedFailures = [];
  await page.locator("#disable-password").fill(newPassword);
  await page.locator("#disable-code").fill(newCodes[0]);
  const beforeDisable = apiRequests.length;
  await page.locator("#totp-disable").click();
  await waitForStatus(page, "Two-step sign-in is off; your other sessions were signed out.");
  await waitUntil(async () => (await page.locator("#totp-state").getAttribute("data-state")) === "none", "#totp-state is not none");
  check(((await page.locator("#totp-state").textContent()) ?? "").startsWith("Off"), `#totp-state says "${await page.locator("#totp-state").textContent()}"`);
  check((await page.locator("#codes-left").count()) === 0, "#codes-left is still shown");
  check(!(await page.locator("#totp-manage").isVisible()), "the forms for an active factor are still shown");
  check(await page.locator("#enrol-form").isVisible(), "the enrol form is not shown again");
  check(!(await page.locator("#recovery").isVisible()) && (await page.locator("#recovery-codes > li").count()) === 0, "the dead recovery codes are still shown");
  await waitUntil(async () => (await listedSessions(page)).length === 1, `sessions listed after turning it off: ${await listedSessions(page)}`);
  check((await listedSessions(page))[0].endsWith("*"), "the session left is not the current one");
  const disabled = apiRequests.slice(beforeDisable).filter((r) => r.method === "POST" && r.path === "/api/v1/users/me/mfa/totp/disable");
  check(disabled.length === 1, `POST /api/v1/users/me/mfa/totp/disable sent ${disabled.length} times, not 1`);
  const disabledBody = JSON.parse(disabled[0].body);
  check(disabledBody.current_password === newPassword && disabledBody.recovery_code === newCodes[0], "the password and the new code were not sent");
  const afterDisable = apiRequests.slice(beforeDisable).map((r) => `${r.method} ${r.path}`);
  for (const reread of ["GET /api/v1/users/me/mfa", "GET /api/v1/sessions"]) {
    check(afterDisable.includes(reread), `${reread} was not re-read after turning it off`);
  }
  await waitUntil(async () => (await page.locator("#events > li[data-type='second_factor_disabled']").count()) === 1, "no second_factor_disabled event listed");
  console.log("account-app: a malformed code is refused; a new recovery code turns two-step sign-in off: state none, the other session ended");

  step = "storage and tokens";
  await checkPageHygiene(page, first.context, "first");
  await checkPageHygiene(second.page, second.context, "second");
  check(accessTokens.size >= 3 && refreshTokens.size >= 3, `saw ${accessTokens.size} access and ${refreshTokens.size} refresh tokens`);
  const tokenFree = new Set(["/api/v1/auth/signup", "/api/v1/auth/login", "/api/v1/auth/mfa/verify", "/api/v1/auth/refresh"]);
  for (const request of apiRequests) {
    const where = `${request.page} ${request.method} ${request.path}`;
    check(request.cookie === null, `${where} sent cookies`);
    for (const token of [...accessTokens, ...refreshTokens]) {
      check(!request.path.includes(token), `${where} put a token in the URL`);
      if (!(request.path === "/api/v1/auth/refresh" && refreshTokens.has(token))) {
        check(!request.body.includes(token), `${where} put a token in the body`);
      }
    }
    if (tokenFree.has(request.path)) {
      check(request.authorization === null, `${where} sent an Authorization header`);
    } else {
      const bearer = /^Bearer (.+)$/.exec(request.authorization ?? "")?.[1];
      check(bearer !== undefined && accessTokens.has(bearer), `${where} did not send an issued access token as a bearer`);
    }
  }
  console.log(`account-app: ${apiRequests.length} API requests: tokens only in Authorization (refresh token only to /auth/refresh); no storage, cookies, inline styles or handlers`);

  step = "screenshot";
  await page.evaluate(() => window.scrollTo(0, 0));
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  console.log(`account-app: screenshot saved to ${screenshot}`);

  step = "console";
  check(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join("\n  ")}`);
  check(failedRequests.length === 0, `failed requests:\n  ${failedRequests.join("\n  ")}`);
  console.log("Account app browser test passed");
} catch (error) {
  exitCode = 1;
  console.error(`Account app browser test failed: ${error instanceof Error ? error.message : error}`);
  if (consoleErrors.length > 0) console.error(`console errors so far:\n  ${consoleErrors.join("\n  ")}`);
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    const failure = screenshot.replace(/\.png$/, "-failure.png");
    await page.screenshot({ path: failure, fullPage: true });
    console.error(`account-app: failure screenshot saved to ${failure}`);
  } catch {
    // The browser may be gone; the error above is what matters.
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
