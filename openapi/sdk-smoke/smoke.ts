// Smoke test of the TypeScript SDK generated from the committed document
// (openapi-typescript types + the openapi-fetch runtime) against a running
// server: sign up, log in, me, refresh, create and list tasks, log out, and
// the 401 afterwards. Usage: PORTCULLIS_URL=http://127.0.0.1:8080 node smoke.js

import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "../.generated/ts/schema.js";

type Problem = components["schemas"]["Problem"];

const baseUrl = process.env.PORTCULLIS_URL;
if (!baseUrl) {
  throw new Error("PORTCULLIS_URL is not set");
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

const email = `ts-sdk-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
const password = "correct horse battery staple 42";

step = "signUp";
const signUp = await client.POST("/api/v1/auth/signup", { body: { email, password } });
check(signUp.response.status === 201, `status ${signUp.response.status}`);
check(signUp.data, "no token pair");
check(signUp.data.token_type === "Bearer", "token_type is not Bearer");
check(signUp.data.user.email === email, "user.email differs");
check(signUp.response.headers.get("cache-control") === "no-store", "no Cache-Control: no-store");

step = "logIn";
const logIn = await client.POST("/api/v1/auth/login", { body: { email, password } });
check(logIn.response.status === 200 && logIn.data, `status ${logIn.response.status}`);
accessToken = logIn.data.access_token;
const refreshToken = logIn.data.refresh_token;
check(logIn.data.expires_in > 0, "expires_in is not positive");

step = "logIn with a wrong password";
const badLogIn = await client.POST("/api/v1/auth/login", {
  body: { email, password: "not the password at all" },
});
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

console.log("TypeScript SDK smoke test passed: signUp, logIn, getMe, refreshTokens, createTask, updateTask, listTasks, logOut, 401");
