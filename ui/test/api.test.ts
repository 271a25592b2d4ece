import { describe, expect, it } from "vitest";
import { Api, ApiError, errorMessage } from "../src/lib/api";

interface Call { url: string; init: RequestInit }

function recorder(answers: Response[]) {
  const calls: Call[] = [];
  const fetchFn = async (url: string, init?: RequestInit) => {
    calls.push({ url, init: init ?? {} });
    const next = answers.shift();
    if (!next) throw new Error("no answer left");
    return next;
  };
  return { calls, fetchFn };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });
const header = (c: Call, name: string) => (c.init.headers as Record<string, string>)[name];
const session = { user: "ana", kind: "user", site_admin: false, projects: { vision: "editor" }, csrf: "tok-123" };

describe("Api", () => {
  it("sends the CSRF token on writes only, after sign-in", async () => {
    const { calls, fetchFn } = recorder([json(200, session), json(200, { projects: [] }), json(200, { runs: [] }),
      new Response(null, { status: 204 })]);
    const api = new Api(fetchFn);
    await api.signIn("secret");
    await api.get("/api/v1/registry/projects");
    await api.post("/api/v1/registry/projects/vision/runs/search", { filter: "" });
    await api.signOut();
    expect(calls.map((c) => c.init.method)).toEqual(["POST", "GET", "POST", "DELETE"]);
    expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ token: "secret" });
    expect(header(calls[1]!, "X-CSRF-Token")).toBeUndefined();
    expect(header(calls[2]!, "X-CSRF-Token")).toBe("tok-123");
    expect(header(calls[3]!, "X-CSRF-Token")).toBe("tok-123");
    for (const c of calls) {
      expect(c.init.credentials).toBe("same-origin");
      expect(header(c, "Authorization")).toBeUndefined();
    }
    expect(api.csrf).toBeNull();
  });

  it("shows the service's error.message", async () => {
    const { fetchFn } = recorder([json(422, { error: { code: "invalid", message: "unknown field params..x" } })]);
    const api = new Api(fetchFn);
    await expect(api.post("/x", {})).rejects.toEqual(new ApiError(422, "unknown field params..x"));
  });

  it("a bad token keeps the app signed out", async () => {
    const { fetchFn } = recorder([json(401, { error: { message: "token is expired" } })]);
    const api = new Api(fetchFn);
    await expect(api.signIn("old")).rejects.toThrow("token is expired");
    expect(api.csrf).toBeNull();
  });

  it("current() is null without a session and restores the CSRF token with one", async () => {
    const { fetchFn } = recorder([json(401, { error: { message: "no session" } }), json(200, session)]);
    const api = new Api(fetchFn);
    expect(await api.current()).toBeNull();
    expect((await api.current())?.user).toBe("ana");
    expect(api.csrf).toBe("tok-123");
  });

  it("falls back to a bearer header only when the session route is missing (development)", async () => {
    const { calls, fetchFn } = recorder([json(404, { detail: "Not Found" }), json(200, { projects: [{ name: "p" }] }),
      json(200, { runs: [] })]);
    const api = new Api(fetchFn);
    const s = await api.signIn("dev-token");
    expect(s.projects).toEqual({ p: "viewer" });
    await api.post("/y", {});
    expect(header(calls[2]!, "Authorization")).toBe("Bearer dev-token");
    expect(header(calls[2]!, "X-CSRF-Token")).toBeUndefined();
  });

  it("does not follow redirects: a redirected route counts as missing", async () => {
    const { calls, fetchFn } = recorder([new Response(null, { status: 307, headers: { Location: "/api/v1/session/" } })]);
    const api = new Api(fetchFn);
    await expect(api.get("/api/v1/session")).rejects.toMatchObject({ status: 404 });
    expect(calls[0]!.init.redirect).toBe("manual");
  });

  it("a 401 outside the session routes reports the session ended", async () => {
    const { fetchFn } = recorder([json(401, { error: { message: "no session" } }),
      json(401, { error: { message: "session expired" } })]);
    const api = new Api(fetchFn);
    let ended = 0;
    api.onUnauthorized = () => { ended++; };
    await expect(api.current()).resolves.toBeNull();
    expect(ended).toBe(0);
    await expect(api.get("/api/v1/registry/projects")).rejects.toThrow("session expired");
    expect(ended).toBe(1);
  });

  it("errorMessage falls back to the status", () => {
    expect(errorMessage(502, null)).toBe("request failed (HTTP 502)");
    expect(errorMessage(400, { detail: "bad" })).toBe("bad");
  });
});
