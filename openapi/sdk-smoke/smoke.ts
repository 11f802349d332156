// Smoke test of the TypeScript SDK generated from the committed document
// (openapi-typescript types + the openapi-fetch runtime) against a running
// server: sign up, confirm the email address through the emailed link, log
// in, me, refresh, create and list tasks, log out, and the 401 afterwards;
// then reset the password through the emailed link: the old access token
// gets 401, the new password logs in, and the link works only once; then
// turn TOTP on (codes computed here, RFC 6238) and log in with the second
// step: a TOTP code (amr pwd, otp, mfa) and a recovery code, which works once.
// Usage: PORTCULLIS_URL=http://127.0.0.1:8080 MAIL_DIR=/path/to/data/mail node smoke.js
// The server must run without SMTP (it writes its emails as .eml files into
// MAIL_DIR) and with its PUBLIC_URL equal to PORTCULLIS_URL.

import { createHmac } from "node:crypto";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../.generated/ts/schema.js";

type Problem = components["schemas"]["Problem"];

const baseUrl: string = process.env.PORTCULLIS_URL?.replace(/\/+$/, "") ?? "";
if (!baseUrl) {
  throw new Error("PORTCULLIS_URL is not set");
}
const mailDir: string = process.env.MAIL_DIR ?? "";
if (!mailDir) {
  throw new Error("MAIL_DIR is not set (the server's $PORTCULLIS_DATA_DIR/mail, where it writes its emails)");
}

let step = "start";
function check(condition: unknown, what: string): asserts condition {
  if (!condition) {
    throw new Error(`${step}: ${what}`);
  }
}

// The access token every protected call sends, as an application would keep it.
let accessToken: string | undefined;
const bearer: Middleware = {
  onRequest({ request }) {
    if (accessToken !== undefined) {
      request.headers.set("Authorization", `Bearer ${accessToken}`);
    }
    return request;
  },
};

const client = createClient<paths>({ baseUrl });
client.use(bearer);

// --- A small MIME reader for the .eml files the server writes without SMTP ---

/** Thrown for an .eml file that is still being written: the next round reads it whole. */
class IncompleteMail extends Error {}

interface Entity {
  /** Lowercase names; values unfolded, RFC 2047 encoded words decoded. */
  headers: Map<string, string>;
  /** The raw body, one char per byte (latin1). */
  body: string;
}

interface Mail {
  to: string;
  subject: string;
  /** The decoded text/plain parts. */
  text: string;
}

/** Decodes `bytes` in `charset`, falling back to UTF-8 for a charset that TextDecoder does not know. */
function decodeCharset(bytes: Uint8Array, charset: string | undefined): string {
  try {
    return new TextDecoder((charset ?? "utf-8").trim().toLowerCase()).decode(bytes);
  } catch {
    return new TextDecoder("utf-8").decode(bytes);
  }
}

/**
 * The bytes of quoted-printable `text` (RFC 2045 6.7): transport padding at
 * line ends dropped, soft line breaks ("=" at a line end, CRLF or LF) removed,
 * and "=XX" decoded; any other character is one byte (`text` is latin1).
 */
function quotedPrintableBytes(text: string): Uint8Array {
  const joined = text.replace(/[ \t]+(?=\r?\n|$)/g, "").replace(/=\r?\n/g, "");
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const hex = joined.slice(i + 1, i + 3);
    if (joined[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else {
      bytes.push(joined.charCodeAt(i) & 0xff);
    }
  }
  return Uint8Array.from(bytes);
}

/** A header value with its RFC 2047 encoded words decoded. */
function decodeHeader(value: string): string {
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?)/g, "$1")
    .replace(/=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=/g, (_word: string, charset: string, encoding: string, text: string) => {
      const bytes =
        encoding.toUpperCase() === "B"
          ? Uint8Array.from(Buffer.from(text, "base64"))
          : quotedPrintableBytes(text.replace(/_/g, " "));
      return decodeCharset(bytes, charset.split("*")[0]);
    });
}

/** Splits an entity (latin1: one char per byte) into its headers and its raw body. */
function splitEntity(raw: string): Entity {
  const blank = /\r?\n\r?\n/.exec(raw);
  if (blank === null) {
    throw new IncompleteMail("no blank line after the headers");
  }
  const head = raw.slice(0, blank.index);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\r?\n(?=[ \t])/g, "").split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) {
      continue;
    }
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = Buffer.from(line.slice(colon + 1).trim(), "latin1").toString("utf8");
    if (!headers.has(name)) {
      headers.set(name, decodeHeader(value));
    }
  }
  return { headers, body: raw.slice(blank.index + blank[0].length) };
}

/** A parameter (`boundary`, `charset`) of a structured header value, or undefined. */
function headerParam(value: string, name: string): string | undefined {
  const match = new RegExp(`;\\s*${name}\\s*=\\s*(?:"([^"]*)"|([^;\\s]+))`, "i").exec(value);
  return match === null ? undefined : (match[1] ?? match[2]);
}

/** Appends the decoded leaf parts of the entity `raw` to `parts`. */
function collectParts(raw: string, parts: { type: string; text: string }[]): void {
  const { headers, body } = splitEntity(raw);
  const contentType = headers.get("content-type") ?? "text/plain; charset=us-ascii";
  const type = (contentType.split(";")[0] ?? "").trim().toLowerCase();
  if (type.startsWith("multipart/")) {
    const boundary = headerParam(contentType, "boundary");
    if (boundary === undefined) {
      throw new Error(`${type} without a boundary`);
    }
    const delimiter = `--${boundary}`;
    let current: string[] | null = null;
    for (const line of body.split(/\r?\n/)) {
      const bare = line.trimEnd();
      if (bare === delimiter || bare === `${delimiter}--`) {
        if (current !== null) {
          collectParts(current.join("\r\n"), parts);
        }
        if (bare !== delimiter) {
          return;
        }
        current = [];
      } else if (current !== null) {
        current.push(line);
      }
    }
    throw new IncompleteMail(`${type} is not closed`);
  }
  const encoding = (headers.get("content-transfer-encoding") ?? "7bit").trim().toLowerCase();
  let bytes: Uint8Array;
  if (encoding === "base64") {
    bytes = Uint8Array.from(Buffer.from(body.replace(/[^A-Za-z0-9+/=]/g, ""), "base64"));
  } else if (encoding === "quoted-printable") {
    bytes = quotedPrintableBytes(body);
  } else {
    bytes = Uint8Array.from(Buffer.from(body, "latin1"));
  }
  parts.push({ type, text: decodeCharset(bytes, headerParam(contentType, "charset")) });
}

/** An .eml file's To and Subject headers and its decoded text/plain parts. */
function readMail(file: string): Mail {
  const raw = readFileSync(file).toString("latin1");
  const { headers } = splitEntity(raw);
  const parts: { type: string; text: string }[] = [];
  collectParts(raw, parts);
  const text = parts
    .filter((part) => part.type === "text/plain")
    .map((part) => part.text)
    .join("\n");
  return { to: headers.get("to") ?? "", subject: headers.get("subject") ?? "", text };
}

/** The addresses of an address-list header, lowercase ("Name <a@b>" and bare "a@b"). */
function addresses(header: string): string[] {
  return header.split(",").map((one) => (/<([^>]*)>/.exec(one)?.[1] ?? one).trim().toLowerCase());
}

const MAIL_TIMEOUT_MS = 20_000;
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/**
 * The token of the `{baseUrl}{path}#token=` link in the newest email to
 * `address` with `subject` in MAIL_DIR, waiting up to MAIL_TIMEOUT_MS for it.
 */
async function mailToken(address: string, subject: string, path: string): Promise<string> {
  const marker = `${baseUrl}${path}#token=`;
  const escaped = path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  const link = new RegExp(`https?://\\S+?${escaped}#token=([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])`);
  const deadline = Date.now() + MAIL_TIMEOUT_MS;
  let seen: string[] = [];
  let problems: string[] = [];
  for (;;) {
    seen = [];
    problems = [];
    const found: { mtime: number; token: string }[] = [];
    let names: string[] = [];
    try {
      names = readdirSync(mailDir).filter((name) => name.endsWith(".eml"));
    } catch (error: unknown) {
      if (!(error instanceof Error && "code" in error && error.code === "ENOENT")) {
        throw error;
      }
    }
    for (const name of names.sort()) {
      const file = join(mailDir, name);
      let mail: Mail;
      let mtime: number;
      try {
        mtime = statSync(file).mtimeMs;
        mail = readMail(file);
      } catch (error: unknown) {
        if (error instanceof IncompleteMail) {
          continue;
        }
        throw new Error(`${step}: cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`);
      }
      seen.push(`${name} to "${mail.to}": "${mail.subject}"`);
      if (!addresses(mail.to).includes(address.toLowerCase()) || mail.subject !== subject) {
        continue;
      }
      const match = link.exec(mail.text);
      if (match === null || match[1] === undefined) {
        problems.push(`${name}: no ${path}#token=<43 base64url characters> link in:\n${mail.text}`);
      } else if (!match[0].startsWith(marker)) {
        problems.push(`${name}: the link ${match[0]} does not start with ${marker}`);
      } else {
        found.push({ mtime, token: match[1] });
      }
    }
    const newest = found.sort((a, b) => b.mtime - a.mtime)[0];
    if (newest !== undefined) {
      return newest.token;
    }
    if (Date.now() >= deadline) {
      break;
    }
    await sleep(200);
  }
  check(problems.length === 0, problems.join("\n"));
  const listing = seen.slice(-20).join("\n  ") || "(none)";
  throw new Error(`${step}: no "${subject}" email to ${address} in ${mailDir} after ${MAIL_TIMEOUT_MS} ms; saw:\n  ${listing}`);
}

// --- TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps) and JWT claims ---

const TOTP_STEP_SECONDS = 30;

/** The bytes of RFC 4648 base32 `text` (padding optional, any case). */
function base32Decode(text: string): Buffer {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  const bytes: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of text.replace(/=+$/, "").toUpperCase()) {
    const index = alphabet.indexOf(char);
    if (index < 0) {
      throw new Error(`${step}: ${JSON.stringify(char)} is not a base32 character`);
    }
    buffer = ((buffer << 5) | index) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((buffer >> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The 6-digit TOTP code of the base32 `secret` for the time step `counter` (RFC 4226 truncation). */
function totpCode(secret: string, counter: number): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac("sha1", base32Decode(secret)).update(message).digest();
  const offset = mac.readUInt8(mac.length - 1) & 0x0f;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, "0");
}

/** The TOTP time step of now. */
function currentTotpStep(): number {
  return Math.floor(Date.now() / 1000 / TOTP_STEP_SECONDS);
}

// RFC 6238 appendix B, SHA-1, T = 59 s (step 1): 94287082, of which 6 digits.
if (totpCode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 1) !== "287082") {
  throw new Error("the TOTP implementation fails the RFC 6238 test vector");
}

/** The `amr` claim of the JWT `token` (its payload base64url-decoded, unverified), or undefined. */
function jwtAmr(token: string): unknown {
  const payload = token.split(".")[1];
  check(payload !== undefined, "the access token is not a JWT");
  const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  check(typeof claims === "object" && claims !== null, "the JWT payload is not an object");
  return "amr" in claims ? claims.amr : undefined;
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item: unknown) => typeof item === "string");
}

/** The same strings in the same order. */
function sameStrings(value: unknown, expected: readonly string[]): boolean {
  return isStringArray(value) && value.length === expected.length && value.every((item, i) => item === expected[i]);
}

type Credentials = components["schemas"]["Credentials"];

const LOG_IN_RETRY_MS = 60_000;

/**
 * Logs in (POST /api/v1/auth/login). A 429 is waited out (its Retry-After)
 * and retried for up to LOG_IN_RETRY_MS: the log-in budget per client
 * address (a burst of 10 by default) is shared by the fuzzing set-up and both
 * smoke programs, which run back to back from one address. A 429 is answered
 * before the password is checked, so it counts toward no lockout.
 */
async function logInRequest(body: Credentials) {
  const deadline = Date.now() + LOG_IN_RETRY_MS;
  for (;;) {
    const result = await client.POST("/api/v1/auth/login", { body });
    if (result.response.status !== 429 || Date.now() >= deadline) {
      return result;
    }
    const retryAfter = Number.parseInt(result.response.headers.get("retry-after") ?? "", 10);
    const waitSeconds = Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : 1;
    console.log(`${step}: the log-in budget is spent (429); retrying in ${waitSeconds} s`);
    await sleep(waitSeconds * 1000);
  }
}

const email = `ts-sdk-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = "correct horse battery staple 42";

step = "signUp";
const signUp = await client.POST("/api/v1/auth/signup", { body: { email, password } });
check(signUp.response.status === 201, `status ${signUp.response.status}`);
check(signUp.data, "no token pair");
check(signUp.data.token_type === "Bearer", "token_type is not Bearer");
check(signUp.data.user.email === email, "user.email differs");
check(signUp.response.headers.get("cache-control") === "no-store", "no Cache-Control: no-store");
check(signUp.data.user.email_verified === false, "the new user's email is already verified");

step = "verification email";
const verifyToken = await mailToken(email, "Confirm your email address", "/account/verify-email");

step = "verifyEmail";
const verified = await client.POST("/api/v1/auth/email/verify", { body: { token: verifyToken } });
check(verified.response.status === 200 && verified.data, `status ${verified.response.status}`);
check(verified.data.user.id === signUp.data.user.id, "not the signed-up user");
check(verified.data.user.email_verified, "user.email_verified is not true");

step = "getMe after verifyEmail";
accessToken = signUp.data.access_token;
const verifiedMe = await client.GET("/api/v1/users/me");
check(verifiedMe.response.status === 200 && verifiedMe.data, `status ${verifiedMe.response.status}`);
check(verifiedMe.data.email_verified === true, "email_verified is not true");
accessToken = undefined;

step = "logIn";
const logIn = await logInRequest({ email, password });
check(logIn.response.status === 200 && logIn.data, `status ${logIn.response.status}`);
accessToken = logIn.data.access_token;
const refreshToken = logIn.data.refresh_token;
check(logIn.data.expires_in > 0, "expires_in is not positive");

step = "logIn with a wrong password";
const badLogIn = await logInRequest({ email, password: "not the password at all" });
check(badLogIn.response.status === 401, `status ${badLogIn.response.status}`);
const badLogInProblem: Problem | undefined = badLogIn.error;
check(badLogInProblem?.code === "invalid_credentials", `code ${badLogInProblem?.code}`);
check(
  badLogIn.response.headers.get("content-type")?.startsWith("application/problem+json"),
  "error is not problem+json",
);

step = "getMe";
const me = await client.GET("/api/v1/users/me");
check(me.response.status === 200 && me.data, `status ${me.response.status}`);
check(me.data.email === email, "email differs");
check(me.data.id === signUp.data.user.id, "id differs");

step = "refreshTokens";
const refreshed = await client.POST("/api/v1/auth/refresh", {
  body: { refresh_token: refreshToken },
});
check(refreshed.response.status === 200 && refreshed.data, `status ${refreshed.response.status}`);
check(refreshed.data.refresh_token !== refreshToken, "refresh token was not rotated");
accessToken = refreshed.data.access_token;

step = "createTask";
const created = await client.POST("/api/v1/tasks", {
  body: { title: "Generate the SDKs", description: "From the committed document" },
});
check(created.response.status === 201 && created.data, `status ${created.response.status}`);
check(created.data.title === "Generate the SDKs", "title differs");
const bare = await client.POST("/api/v1/tasks", { body: { title: "No description" } });
check(bare.response.status === 201 && bare.data, `status ${bare.response.status}`);
check(!("description" in bare.data), "an absent description is sent as a property");

step = "updateTask";
const updated = await client.PATCH("/api/v1/tasks/{id}", {
  params: { path: { id: created.data.id } },
  body: { done: true, description: null },
});
check(updated.response.status === 200 && updated.data, `status ${updated.response.status}`);
check(updated.data.done && updated.data.description === undefined, "update not applied");

step = "listTasks";
const page = await client.GET("/api/v1/tasks", { params: { query: { limit: 10 } } });
check(page.response.status === 200 && page.data, `status ${page.response.status}`);
const ids = page.data.items.map((task) => task.id);
check(ids.includes(created.data.id) && ids.includes(bare.data.id), "created tasks not listed");
check(page.data.next_cursor === undefined, "next_cursor on the only page");

step = "logOut";
const loggedOut = await client.POST("/api/v1/auth/logout", { params: { query: { scope: "this" } } });
check(loggedOut.response.status === 200 && loggedOut.data, `status ${loggedOut.response.status}`);
check(loggedOut.data.revoked_sessions.length === 1, "not exactly one session revoked");

step = "getMe after logOut";
const after = await client.GET("/api/v1/users/me");
check(after.response.status === 401, `status ${after.response.status}, expected 401`);
check(after.error?.code === "invalid_token", `code ${after.error?.code}`);
check(after.response.headers.get("www-authenticate")?.startsWith("Bearer"), "no WWW-Authenticate");

// Password reset: a fresh session that the reset must sign out.
step = "logIn before the reset";
const beforeReset = await logInRequest({ email, password });
check(beforeReset.response.status === 200 && beforeReset.data, `status ${beforeReset.response.status}`);
accessToken = beforeReset.data.access_token;
const meBeforeReset = await client.GET("/api/v1/users/me");
check(meBeforeReset.response.status === 200, `getMe: status ${meBeforeReset.response.status}`);

step = "forgotPassword";
const forgot = await client.POST("/api/v1/auth/password/forgot", { body: { email } });
check(forgot.response.status === 202 && forgot.data, `status ${forgot.response.status}`);
check(forgot.data.message.length > 0, "an empty message");

step = "reset email";
const resetToken = await mailToken(email, "Reset your password", "/account/reset-password");

step = "resetPassword";
const newPassword = `a brand new passphrase ${Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, "0")} at dusk`;
const reset = await client.POST("/api/v1/auth/password/reset", {
  body: { token: resetToken, new_password: newPassword },
});
check(reset.response.status === 204, `status ${reset.response.status}`);

step = "getMe with the access token from before the reset";
const signedOut = await client.GET("/api/v1/users/me");
check(signedOut.response.status === 401, `status ${signedOut.response.status}, expected 401`);
check(signedOut.error?.code === "invalid_token", `code ${signedOut.error?.code}`);
accessToken = undefined;

step = "logIn with the old password";
const oldLogIn = await logInRequest({ email, password });
check(oldLogIn.response.status === 401, `status ${oldLogIn.response.status}, expected 401`);

step = "logIn with the new password";
const newLogIn = await logInRequest({ email, password: newPassword });
check(newLogIn.response.status === 200 && newLogIn.data, `status ${newLogIn.response.status}`);
check(newLogIn.data.user.email === email, "not the signed-up user");

step = "resetPassword with a used token";
const reused = await client.POST("/api/v1/auth/password/reset", {
  body: { token: resetToken, new_password: `${newPassword} again` },
});
check(reused.response.status === 400, `status ${reused.response.status}, expected 400`);
const reusedProblem: Problem | undefined = reused.error;
check(reusedProblem?.code === "invalid_token", `code ${reusedProblem?.code}`);

// Second factor: TOTP on, with the session of the new password.
step = "enrolTotp";
accessToken = newLogIn.data.access_token;
const enrolment = await client.POST("/api/v1/users/me/mfa/totp", {
  body: { current_password: newPassword },
});
check(enrolment.response.status === 201 && enrolment.data, `status ${enrolment.response.status}`);
check(enrolment.response.headers.get("cache-control") === "no-store", "no Cache-Control: no-store");
const totpSecret = enrolment.data.secret;
check(/^[A-Z2-7]+=*$/.test(totpSecret), `the secret ${totpSecret} is not base32`);
check(enrolment.data.otpauth_uri.startsWith("otpauth://totp/"), "otpauth_uri is not an otpauth://totp/ URI");
check(
  new URL(enrolment.data.otpauth_uri).searchParams.get("secret") === totpSecret,
  "otpauth_uri does not carry the secret",
);
check(enrolment.data.qr_svg.includes("<svg"), "qr_svg is not an SVG document");

step = "confirmTotp";
// The confirmation spends the time step of now: the second step below sends
// the code of now + 30 s (one step of drift is accepted, and it is later).
const confirmed = await client.POST("/api/v1/users/me/mfa/totp/confirm", {
  body: { code: totpCode(totpSecret, currentTotpStep()) },
});
check(confirmed.response.status === 200 && confirmed.data, `status ${confirmed.response.status}`);
const recoveryCodes = confirmed.data.recovery_codes;
check(recoveryCodes.length === 10, `${recoveryCodes.length} recovery codes, expected 10`);
check(
  recoveryCodes.every((code) => /^[a-z2-7]{4}(?:-[a-z2-7]{4}){3}$/.test(code)),
  `recovery codes not of the form xxxx-xxxx-xxxx-xxxx: ${recoveryCodes.join(", ")}`,
);
check(new Set(recoveryCodes).size === 10, "recovery codes repeat");

step = "getMfa";
const mfaStatus = await client.GET("/api/v1/users/me/mfa");
check(mfaStatus.response.status === 200 && mfaStatus.data, `status ${mfaStatus.response.status}`);
check(mfaStatus.data.totp === "active", `totp is ${mfaStatus.data.totp}, expected active`);
check(mfaStatus.data.recovery_codes_left === 10, `recovery_codes_left is ${mfaStatus.data.recovery_codes_left}`);
accessToken = undefined;

/** Logs in with the right password and expects the 401 mfa_required challenge; its mfa_token. */
async function mfaChallenge(): Promise<string> {
  const challenged = await logInRequest({ email, password: newPassword });
  check(challenged.response.status === 401, `status ${challenged.response.status}, expected 401`);
  check(
    challenged.response.headers.get("content-type")?.startsWith("application/problem+json"),
    "error is not problem+json",
  );
  const problem: Problem | undefined = challenged.error;
  check(problem?.code === "mfa_required", `code ${problem?.code}, expected mfa_required`);
  check(sameStrings(problem.methods, ["totp", "recovery_code"]), `methods ${JSON.stringify(problem.methods)}`);
  const mfaToken: string | undefined = problem.mfa_token;
  check(mfaToken !== undefined && mfaToken.length > 0, "no mfa_token");
  return mfaToken;
}

step = "logIn with TOTP active";
const totpChallenge = await mfaChallenge();

step = "verifyMfa with a TOTP code";
const totpVerified = await client.POST("/api/v1/auth/mfa/verify", {
  body: { mfa_token: totpChallenge, totp_code: totpCode(totpSecret, currentTotpStep() + 1) },
});
check(totpVerified.response.status === 200 && totpVerified.data, `status ${totpVerified.response.status}`);
check(totpVerified.data.user.email === email, "not the signed-up user");
check(totpVerified.response.headers.get("cache-control") === "no-store", "no Cache-Control: no-store");
const totpAmr = jwtAmr(totpVerified.data.access_token);
check(sameStrings(totpAmr, ["pwd", "otp", "mfa"]), `amr ${JSON.stringify(totpAmr)}, expected ["pwd","otp","mfa"]`);

step = "getMe with the second-factor session";
accessToken = totpVerified.data.access_token;
const mfaMe = await client.GET("/api/v1/users/me");
check(mfaMe.response.status === 200 && mfaMe.data, `status ${mfaMe.response.status}`);
check(mfaMe.data.email === email, "email differs");
accessToken = undefined;

step = "logIn for a recovery code";
const recoveryChallenge = await mfaChallenge();
const recoveryCode = recoveryCodes[0];
check(recoveryCode !== undefined, "no recovery code");

step = "verifyMfa with a recovery code";
const recovered = await client.POST("/api/v1/auth/mfa/verify", {
  body: { mfa_token: recoveryChallenge, recovery_code: recoveryCode },
});
check(recovered.response.status === 200 && recovered.data, `status ${recovered.response.status}`);
check(recovered.data.user.email === email, "not the signed-up user");

step = "verifyMfa with a spent recovery code";
const spentChallenge = await mfaChallenge();
const spent = await client.POST("/api/v1/auth/mfa/verify", {
  body: { mfa_token: spentChallenge, recovery_code: recoveryCode },
});
check(spent.response.status === 403, `status ${spent.response.status}, expected 403`);
const spentProblem: Problem | undefined = spent.error;
check(spentProblem?.code === "invalid_second_factor", `code ${spentProblem?.code}, expected invalid_second_factor`);

console.log(
  "TypeScript SDK smoke test passed: signUp, verification email, verifyEmail, getMe (email_verified), logIn, " +
    "getMe, refreshTokens, createTask, updateTask, listTasks, logOut, 401, forgotPassword, reset email, " +
    "resetPassword, old token 401, logIn with the new password, used reset token 400, enrolTotp, confirmTotp " +
    "(10 recovery codes), getMfa (active, 10 left), logIn 401 mfa_required, verifyMfa with TOTP (amr pwd,otp,mfa), " +
    "verifyMfa with a recovery code, spent recovery code 403",
);
