// Swagger UI at /docs, used as a person would in headless Debian Chromium:
// the page loads without console errors and lists every operation of the
// document; "Try it out" on sign-up returns 201; "Authorize" with the access
// token from that response makes GET /api/v1/users/me return 200.
//
// Usage: PORTCULLIS_URL=http://127.0.0.1:8080 node swagger-ui.test.mjs
// Env: CHROMIUM (default /usr/bin/chromium), SCREENSHOT (default
// ../ci-artifacts/swagger-ui.png, relative to this file).

import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const baseUrl = process.env.PORTCULLIS_URL;
if (!baseUrl) throw new Error("PORTCULLIS_URL is not set");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshot = resolve(process.env.SCREENSHOT ?? resolve(here, "../ci-artifacts/swagger-ui.png"));
const TIMEOUT = 20_000;

const consoleErrors = [];
const failedRequests = [];
let step = "launch";

function check(condition, what) {
  if (!condition) throw new Error(`${step}: ${what}`);
}

// The operations the document declares, as Swagger UI names their blocks.
const doc = await (await fetch(`${baseUrl}/openapi.json`)).json();
const expected = [];
for (const item of Object.values(doc.paths)) {
  for (const op of Object.values(item)) {
    if (op && typeof op === "object" && op.operationId) {
      expected.push(`operations-${op.tags[0]}-${op.operationId}`);
    }
  }
}

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
const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
page.setDefaultTimeout(TIMEOUT);
page.on("console", (msg) => {
  if (msg.type() !== "error") return;
  const url = msg.location().url;
  consoleErrors.push(`${step}: ${msg.text()} (${url})`);
});
page.on("pageerror", (error) => consoleErrors.push(`${step}: uncaught ${error.message}`));
page.on("response", (response) => {
  if (response.status() >= 400 && !response.url().startsWith(`${baseUrl}/api/`)) {
    consoleErrors.push(`${step}: ${response.status()} for ${response.url()}`);
  }
});
page.on("requestfailed", (request) =>
  failedRequests.push(`${step}: ${request.method()} ${request.url()} ${request.failure()?.errorText}`),
);

/** Expands an operation, presses "Try it out", optionally fills the body, executes; returns the shown status and body. */
async function tryItOut(blockId, body) {
  const block = page.locator(`#${blockId}`);
  await block.scrollIntoViewIfNeeded();
  if (!(await block.evaluate((el) => el.classList.contains("is-open")))) {
    await block.locator(".opblock-summary").first().click();
  }
  await block.locator("button.try-out__btn").click();
  if (body !== undefined) {
    const textarea = block.locator("textarea.body-param__text");
    await textarea.fill(JSON.stringify(body, null, 2));
  }
  await block.locator("button.execute").click();
  const status = block.locator(".live-responses-table .response .response-col_status").first();
  await status.waitFor();
  const shownStatus = (await status.innerText()).trim().split(/\s+/)[0];
  const shownBody = await block
    .locator(".live-responses-table .response .response-col_description pre")
    .first()
    .innerText();
  return { status: shownStatus, body: shownBody };
}

try {
  step = "load /docs";
  const response = await page.goto(`${baseUrl}/docs`, { waitUntil: "load" });
  check(response?.status() === 200, `status ${response?.status()}`);
  await page.locator(".swagger-ui .info .title").waitFor();
  const title = await page.locator(".swagger-ui .info .title").innerText();
  check(title.includes(doc.info.title), `title is ${title}`);

  step = "list operations";
  await page.locator(".opblock").first().waitFor();
  const shown = await page.locator(".opblock").evaluateAll((blocks) => blocks.map((b) => b.id));
  const missing = expected.filter((id) => !shown.includes(id));
  check(missing.length === 0, `missing operations: ${missing.join(", ")}`);
  check(shown.length === expected.length, `${shown.length} operations shown, ${expected.length} declared`);
  console.log(`swagger-ui: ${shown.length} operations listed`);

  step = "sign up through Try it out";
  const email = `swagger-ui-${Date.now()}@example.com`;
  const signUp = await tryItOut("operations-Auth-signUp", {
    email,
    password: "correct horse battery staple 42",
  });
  check(signUp.status === "201", `status ${signUp.status}: ${signUp.body}`);
  const accessToken = JSON.parse(signUp.body).access_token;
  check(typeof accessToken === "string" && accessToken.split(".").length === 3, "no JWT access token shown");
  console.log("swagger-ui: sign-up through Try it out returned 201");

  step = "authorize";
  await page.locator(".auth-wrapper button.authorize").click();
  const modal = page.locator(".modal-ux");
  await modal.waitFor();
  await modal.locator("input").first().fill(accessToken);
  await modal.locator(".auth-btn-wrapper button.authorize").click();
  await modal.locator(".auth-btn-wrapper button.btn-done").click();
  await modal.waitFor({ state: "detached" });

  step = "GET /api/v1/users/me after Authorize";
  const me = await tryItOut("operations-Users-getMe");
  check(me.status === "200", `status ${me.status}: ${me.body}`);
  check(JSON.parse(me.body).email === email, `body is ${me.body}`);
  const curl = await page.locator("#operations-Users-getMe .curl-command").innerText();
  check(/authorization: Bearer ey/i.test(curl), "the request did not carry the bearer token");
  console.log("swagger-ui: Authorize + GET /api/v1/users/me returned 200");

  step = "screenshot";
  await page.locator("#operations-Users-getMe").scrollIntoViewIfNeeded();
  await page.evaluate(() => {
    const block = document.querySelector("#operations-Users-getMe");
    if (block) window.scrollTo(0, block.getBoundingClientRect().top + window.scrollY - 80);
  });
  mkdirSync(dirname(screenshot), { recursive: true });
  await page.screenshot({ path: screenshot });
  console.log(`swagger-ui: screenshot saved to ${screenshot}`);

  step = "console";
  check(consoleErrors.length === 0, `console errors:\n  ${consoleErrors.join("\n  ")}`);
  check(failedRequests.length === 0, `failed requests:\n  ${failedRequests.join("\n  ")}`);
  console.log("Swagger UI browser test passed");
} catch (error) {
  exitCode = 1;
  console.error(`Swagger UI browser test failed: ${error instanceof Error ? error.message : error}`);
  try {
    mkdirSync(dirname(screenshot), { recursive: true });
    const failure = screenshot.replace(/\.png$/, "-failure.png");
    await page.screenshot({ path: failure, fullPage: false });
    console.error(`swagger-ui: failure screenshot saved to ${failure}`);
  } catch {
    // The browser may be gone; the error above is what matters.
  }
} finally {
  await browser.close();
}
process.exit(exitCode);
