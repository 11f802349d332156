// The account pages reached from emails, used as a person would in headless
// Debian Chromium: sign-up sends a verification email whose link, prefetched
// by a "mail scanner" first, still confirms the address when opened and
// pressed; password/forgot sends a reset email whose link sets a new password
// (after refusing a mismatching confirmation), signs out every session, and
// works only once. No console errors (CSP violations are console errors).
//
// Usage: PORTCULLIS_URL=http://127.0.0.1:8080 MAIL_DIR=/path/to/data/mail node account-pages.test.mjs
// The server must run without SMTP (its emails are written as .eml files into
// MAIL_DIR) and with its PUBLIC_URL equal to PORTCULLIS_URL.
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default
// ../ci-artifacts/account-pages.png, relative to this file).

import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const baseUrl = process.env.PORTCULLIS_URL?.replace(/\/+$/, "");
if (!baseUrl) throw new Error("PORTCULLIS_URL is not set");
if (!process.env.MAIL_DIR) throw new Error("MAIL_DIR is not set");
const mailDir = resolve(process.env.MAIL_DIR);
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = resolve(process.env.SCREENSHOT ?? resolve(here, "../ci-artifacts/account-pages.png"));
const TIMEOUT = 20_000;

const USED_LINK = "expired or was already used";
const MISMATCH = "The two passwords do not match.";
const PASSWORD_CHANGED = "Your password is changed";

const consoleErrors = [];
const failedRequests = [];
let step = "launch";
// Chromium logs "Failed to load resource: the server responded with a status
// of 4xx" for a fetch that the page expects to fail; the step that expects one
// names the API path here.
let expectedFailure = null;

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

/** A JSON request to the API; resolves to the status and the parsed body (text when not JSON). */
async function api(method, path, { body, token } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text === "" ? null : JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the error message.
  }
  return { status: response.status, body: parsed, text };
}

// --- A small MIME reader for the .eml files of lettre's file transport --------

/** Bytes of quoted-printable `text` (RFC 2045 6.7); soft line breaks must be gone already. */
function quotedPrintableBytes(text) {
  const bytes = [];
  for (let i = 0; i < text.length; i++) {
    const hex = text.slice(i + 1, i + 3);
    if (text[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(text.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** Decodes `bytes` in `charset`, falling back to UTF-8 for a charset Node does not know. */
function decodeCharset(bytes, charset = "utf-8") {
  try {
    return new TextDecoder(charset.trim().toLowerCase()).decode(bytes);
  } catch {
    return new TextDecoder("utf-8").decode(bytes);
  }
}

/** A header value with its RFC 2047 encoded words decoded. */
function decodeHeader(value) {
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (_, charset, encoding, text) => {
      const bytes =
        encoding.toUpperCase() === "B"
          ? Buffer.from(text, "base64")
          : quotedPrintableBytes(text.replace(/_/g, " "));
      return decodeCharset(bytes, charset.split("*")[0]);
    });
}

/** Splits an entity (a latin1 string: one char per byte) into lowercase-named, unfolded, decoded headers and its raw body. */
function splitEntity(raw) {
  const blank = /\r?\n\r?\n/.exec(raw);
  const head = blank ? raw.slice(0, blank.index) : raw;
  const body = blank ? raw.slice(blank.index + blank[0].length) : "";
  const headers = new Map();
  for (const line of head.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = Buffer.from(line.slice(colon + 1).trim(), "latin1").toString("utf8");
    if (!headers.has(name)) headers.set(name, decodeHeader(value));
  }
  return { headers, body };
}

/** A parameter of a structured header (`boundary`, `charset`), or undefined. */
function headerParam(value, name) {
  const match = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(value);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** Appends the leaf parts of an entity to `parts` as { type, text }; throws when a multipart is not closed (a file still being written). */
function collectParts(raw, parts) {
  const { headers, body } = splitEntity(raw);
  const contentType = headers.get("content-type") ?? "text/plain; charset=us-ascii";
  const type = contentType.split(";")[0].trim().toLowerCase();
  if (type.startsWith("multipart/")) {
    const boundary = headerParam(contentType, "boundary");
    if (!boundary) throw new Error(`${type} without a boundary`);
    const delimiter = `--${boundary}`;
    let current = null;
    let closed = false;
    for (const line of body.split(/\r?\n/)) {
      const bare = line.trimEnd();
      if (bare === delimiter || bare === `${delimiter}--`) {
        if (current !== null) collectParts(current.join("\r\n"), parts);
        if (bare !== delimiter) {
          closed = true;
          break;
        }
        current = [];
      } else if (current !== null) {
        current.push(line);
      }
    }
    if (!closed) throw new Error(`${type} is not closed`);
    return;
  }
  const encoding = (headers.get("content-transfer-encoding") ?? "7bit").trim().toLowerCase();
  let bytes;
  if (encoding === "base64") {
    bytes = Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
  } else if (encoding === "quoted-printable") {
    bytes = quotedPrintableBytes(body.replace(/[ \t]+(?=\r?\n|$)/g, "").replace(/=\r?\n/g, ""));
  } else {
    bytes = Buffer.from(body, "latin1");
  }
  parts.push({ type, text: decodeCharset(bytes, headerParam(contentType, "charset")) });
}

/** `html` with its character references decoded (an escaping template may write "/" as "&#x2f;"). */
function unescapeHtml(html) {
  const named = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
  return html.replace(/&(?:#[xX]([0-9A-Fa-f]+)|#(\d+)|(amp|lt|gt|quot|apos));/g, (_, hex, dec, name) =>
    name ? named[name] : String.fromCodePoint(Number.parseInt(hex ?? dec, hex ? 16 : 10)),
  );
}

/** An .eml file as { to, text, html }: the decoded To header and the decoded text/plain and text/html parts. */
function readMail(file) {
  const raw = readFileSync(file).toString("latin1");
  const { headers } = splitEntity(raw);
  const parts = [];
  collectParts(raw, parts);
  const text = parts.filter((part) => part.type === "text/plain").map((part) => part.text).join("\n");
  const html = parts.filter((part) => part.type === "text/html").map((part) => part.text).join("\n");
  return { to: headers.get("to") ?? "", text, html };
}

/**
 * Waits for the newest email to `address` whose text part holds a link to
 * `{baseUrl}{path}#token=`; resolves to that link and the email's HTML part.
 */
async function waitForLink(address, path) {
  const marker = `${path}#token=`;
  const linkPattern = new RegExp(
    `https?://\\S+${path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}#token=[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])`,
  );
  const deadline = Date.now() + TIMEOUT;
  let seen = [];
  let problems = [];
  while (Date.now() < deadline) {
    let names = [];
    try {
      names = readdirSync(mailDir).filter((name) => name.endsWith(".eml"));
    } catch (error) {
      if (error.code !== "ENOENT") throw error;
    }
    seen = [];
    problems = [];
    const found = [];
    for (const name of names) {
      const file = join(mailDir, name);
      let mail;
      try {
        mail = readMail(file);
      } catch {
        continue; // Still being written: the next round reads it whole.
      }
      seen.push(`${name} to ${mail.to}`);
      if (!mail.to.toLowerCase().includes(address.toLowerCase()) || !mail.text.includes(marker)) continue;
      const link = linkPattern.exec(mail.text)?.[0];
      if (link === undefined) {
        problems.push(`${name}: no ${path}#token=<43 base64url characters> link in the text part:\n${mail.text}`);
      } else if (!link.startsWith(`${baseUrl}${marker}`)) {
        problems.push(`${name}: the link ${link} does not start with ${baseUrl}${marker}`);
      } else if (!unescapeHtml(mail.html).includes(link)) {
        problems.push(`${name}: the HTML part does not carry the link ${link}`);
      } else {
        found.push({ link, mtime: statSync(file).mtimeMs });
      }
    }
    if (found.length > 0) {
      found.sort((a, b) => b.mtime - a.mtime);
      return found[0].link;
    }
    await sleep(200);
  }
  check(problems.length === 0, problems.join("\n"));
  check(false, `no email to ${address} with a ${marker} link in ${mailDir} after ${TIMEOUT} ms; saw:\n  ${seen.slice(-20).join("\n  ") || "(none)"}`);
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

let exitCode = 0;
const page = await browser.newPage({ viewport: { width: 800, height: 700 } });
page.setDefaultTimeout(TIMEOUT);
const apiRequests = [];
page.on("console", (msg) => {
  if (msg.type() !== "error") return;
  const url = msg.location().url;
  if (
    expectedFailure !== null &&
    url === `${baseUrl}${expectedFailure}` &&
    /^Failed to load resource: the server responded with a status of 4\d\d\b/.test(msg.text())
  ) {
    return;
  }
  consoleErrors.push(`${step}: ${msg.text()} (${url})`);
});
page.on("pageerror", (error) => consoleErrors.push(`${step}: uncaught ${error.message}`));
page.on("request", (request) => {
  if (request.url().startsWith(`${baseUrl}/api/`)) apiRequests.push(`${request.method()} ${request.url()}`);
});
page.on("response", (response) => {
  if (response.status() >= 400 && !response.url().startsWith(`${baseUrl}/api/`)) {
    consoleErrors.push(`${step}: ${response.status()} for ${response.url()}`);
  }
});
page.on("requestfailed", (request) =>
  failedRequests.push(`${step}: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
);

/** Waits until #status contains `expected`; resolves to its text. */
async function waitForStatus(expected) {
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

/**
 * Opens an emailed link as a fresh document (never as a same-document
 * fragment navigation) and checks that the page loaded, sent nothing to the
 * API and took the token out of the address bar.
 */
async function openLink(link, title) {
  await page.goto("about:blank");
  apiRequests.length = 0;
  const response = await page.goto(link, { waitUntil: "load" });
  check(response?.status() === 200, `status ${response?.status()}`);
  check((await page.title()) === title, `title is "${await page.title()}"`);
  const path = new URL(link).pathname;
  const deadline = Date.now() + 2_000;
  while (page.url() !== `${baseUrl}${path}` && Date.now() < deadline) await sleep(50);
  check(!page.url().includes("#token") && !page.url().includes("token="), `the address bar still shows ${page.url()}`);
  check(page.url() === `${baseUrl}${path}`, `the address bar shows ${page.url()}`);
  check(apiRequests.length === 0, `loading the page called the API: ${apiRequests.join(", ")}`);
}

/** A plain GET of an emailed link, as a mail scanner's prefetch does: the page, and nothing spent. */
async function prefetch(link) {
  const response = await fetch(link, { redirect: "manual" });
  const body = await response.text();
  check(response.status === 200, `prefetch status ${response.status}`);
  check(/^text\/html\b/i.test(response.headers.get("content-type") ?? ""), `prefetch content-type ${response.headers.get("content-type")}`);
  const csp = response.headers.get("content-security-policy") ?? "";
  check(/default-src 'none'/.test(csp) && /script-src 'self'/.test(csp), `content-security-policy is "${csp}"`);
  check(body.includes("/account/assets/account.js"), "the page does not load /account/assets/account.js");
}

try {
  step = "sign up";
  const email = `pages-${randomBytes(6).toString("hex")}@example.com`;
  const password = passphrase(email);
  const signUp = await api("POST", "/api/v1/auth/signup", { body: { email, password } });
  check(signUp.status === 201, `status ${signUp.status}: ${signUp.text}`);
  const accessToken = signUp.body?.access_token;
  check(typeof accessToken === "string" && accessToken.split(".").length === 3, "no JWT access token");
  const before = await api("GET", "/api/v1/users/me", { token: accessToken });
  check(before.status === 200 && before.body?.email_verified === false, `GET /api/v1/users/me: ${before.status} ${before.text}`);
  console.log(`account-pages: signed up ${email} (email_verified false)`);

  step = "verification email";
  const verifyLink = await waitForLink(email, "/account/verify-email");
  console.log(`account-pages: verification email has ${new URL(verifyLink).origin}/account/verify-email#token=<43 chars>`);

  step = "prefetch verification link";
  await prefetch(verifyLink);
  const afterPrefetch = await api("GET", "/api/v1/users/me", { token: accessToken });
  check(afterPrefetch.body?.email_verified === false, `the prefetch verified the email: ${afterPrefetch.text}`);
  console.log("account-pages: prefetching the verification link returned the page and consumed nothing");

  step = "damaged verification link";
  await openLink(verifyLink.slice(0, -1), "Confirm your email \u00b7 Portcullis");
  await waitForStatus("This link is incomplete or damaged.");
  check(!(await page.locator("#confirm").isVisible()), "#confirm is shown for a damaged link");
  console.log("account-pages: a truncated link shows the damaged-link message and no button");

  step = "open verification link";
  await openLink(verifyLink, "Confirm your email \u00b7 Portcullis");
  await page.locator("h1", { hasText: "Confirm your email address" }).waitFor();
  const confirm = page.locator("#confirm");
  check(await confirm.isVisible(), "#confirm is not shown");
  check((await confirm.innerText()).trim() === "Confirm my email address", `#confirm says "${await confirm.innerText()}"`);
  const notYet = await api("GET", "/api/v1/users/me", { token: accessToken });
  check(notYet.body?.email_verified === false, `opening the page verified the email: ${notYet.text}`);
  console.log("account-pages: verification page opened; #token gone from the address bar, nothing sent");

  step = "confirm email";
  await confirm.click();
  const confirmed = await waitForStatus("is confirmed");
  check(confirmed.includes(email), `#status does not name ${email}: "${confirmed}"`);
  const verified = await api("GET", "/api/v1/users/me", { token: accessToken });
  check(verified.status === 200, `GET /api/v1/users/me: ${verified.status} ${verified.text}`);
  check(verified.body?.email_verified === true, `email_verified is not true: ${verified.text}`);
  console.log("account-pages: pressing #confirm verified the email (email_verified true)");

  step = "forgot password";
  const forgot = await api("POST", "/api/v1/auth/password/forgot", { body: { email } });
  check(forgot.status === 202, `status ${forgot.status}: ${forgot.text}`);
  const resetLink = await waitForLink(email, "/account/reset-password");
  await prefetch(resetLink);
  console.log("account-pages: password/forgot returned 202; reset email received; prefetch consumed nothing");

  step = "open reset link";
  await openLink(resetLink, "Reset your password \u00b7 Portcullis");
  await page.locator("h1", { hasText: "Choose a new password" }).waitFor();
  check(await page.locator("#reset").isVisible(), "#reset is not shown");
  check(!(await page.locator("#second-factor").isVisible()), "#second-factor is shown");
  console.log("account-pages: reset page opened; #token gone from the address bar, nothing sent");

  step = "mismatching confirmation";
  const newPassword = passphrase(email);
  await page.locator("#new-password").fill(newPassword);
  await page.locator("#confirm-password").fill(`${newPassword} again`);
  await page.locator("#submit").click();
  await waitForStatus(MISMATCH);
  check(apiRequests.length === 0, `a mismatching confirmation was sent: ${apiRequests.join(", ")}`);
  check(await page.locator("#reset").isVisible(), "the form is gone after a mismatch");
  console.log("account-pages: a mismatching confirmation is refused in the page");

  step = "set new password";
  await page.locator("#confirm-password").fill(newPassword);
  await page.locator("#submit").click();
  await waitForStatus(PASSWORD_CHANGED);
  check(!(await page.locator("#reset").isVisible()), "the form is still shown after the change");
  console.log("account-pages: the reset page set the new password");

  step = "log in after the reset";
  const oldLogin = await api("POST", "/api/v1/auth/login", { body: { email, password } });
  check(oldLogin.status === 401, `the old password: status ${oldLogin.status}: ${oldLogin.text}`);
  const newLogin = await api("POST", "/api/v1/auth/login", { body: { email, password: newPassword } });
  check(newLogin.status === 200, `the new password: status ${newLogin.status}: ${newLogin.text}`);
  const revoked = await api("GET", "/api/v1/users/me", { token: accessToken });
  check(revoked.status === 401, `the access token from sign-up: status ${revoked.status}: ${revoked.text}`);
  console.log("account-pages: old password 401, new password 200, the sign-up session signed out (401)");

  step = "reuse reset link";
  await openLink(resetLink, "Reset your password \u00b7 Portcullis");
  const another = passphrase(email);
  await page.locator("#new-password").fill(another);
  await page.locator("#confirm-password").fill(another);
  expectedFailure = "/api/v1/auth/password/reset";
  await page.locator("#submit").click();
  await waitForStatus(USED_LINK);
  expectedFailure = null;
  check(!(await page.locator("#reset").isVisible()), "the form is still shown for a used link");
  console.log("account-pages: the used reset link says it expired or was already used");

  step = "screenshot";
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  console.log(`account-pages: screenshot saved to ${screenshot}`);

  step = "console";
  check(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join("\n  ")}`);
  check(failedRequests.length === 0, `failed requests:\n  ${failedRequests.join("\n  ")}`);
  console.log("Account pages browser test passed");
} catch (error) {
  exitCode = 1;
  console.error(`Account pages browser test failed: ${error instanceof Error ? error.message : error}`);
  if (consoleErrors.length > 0) console.error(`console errors so far:\n  ${consoleErrors.join("\n  ")}`);
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    const failure = screenshot.replace(/\.png$/, "-failure.png");
    await page.screenshot({ path: failure, fullPage: false });
    console.error(`account-pages: failure screenshot saved to ${failure}`);
  } catch {
    // The browser may be gone; the error above is what matters.
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
