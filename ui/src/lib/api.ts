// The API client. Credentials are the gateway's HttpOnly session cookie (same origin); a write
// (any method but GET/HEAD/OPTIONS) carries the session's CSRF token, kept in memory only, so a
// page from another site can neither read it nor make the browser send it.
import type { Session } from "./types";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = "ApiError";
  }
}

/** The message to show for an error answer: the service's `error.message` when it sent one. */
export function errorMessage(status: number, body: unknown): string {
  if (body && typeof body === "object") {
    const err = (body as { error?: { message?: unknown } }).error;
    if (err && typeof err.message === "string" && err.message) return err.message;
    const detail = (body as { detail?: unknown }).detail;
    if (typeof detail === "string" && detail) return detail;
  }
  return `request failed (HTTP ${status})`;
}

export class Api {
  /** The session's CSRF token (from the session body; never stored in the page's storage). */
  csrf: string | null = null;
  /** Development only: a bearer token used when the gateway has no session routes (404). */
  devBearer: string | null = null;

  /** Called when a request outside the session routes answers 401: the session ended (expired,
   * signed out elsewhere, token revoked), so the app goes back to sign-in. */
  onUnauthorized: (() => void) | null = null;

  constructor(private readonly fetchFn: FetchLike = (i, init) => globalThis.fetch(i, init)) {}

  headers(method: string, hasBody: boolean): Record<string, string> {
    const h: Record<string, string> = { Accept: "application/json" };
    if (hasBody) h["Content-Type"] = "application/json";
    if (this.devBearer) h["Authorization"] = `Bearer ${this.devBearer}`;
    else if (!SAFE_METHODS.has(method.toUpperCase()) && this.csrf) h["X-CSRF-Token"] = this.csrf;
    return h;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const init: RequestInit = {
      method,
      credentials: "same-origin",
      // The API never redirects a page: a redirect means the route is not there (a gateway
      // without a route answers FastAPI's trailing-slash 307), so it is not followed.
      redirect: "manual",
      headers: this.headers(method, body !== undefined),
    };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await this.fetchFn(path, init);
    if (res.type === "opaqueredirect" || (res.status >= 300 && res.status < 400)) {
      throw new ApiError(404, `no API route ${method} ${path} (the server answered a redirect)`);
    }
    if (res.status === 204) return undefined as T;
    const text = await res.text();
    let parsed: unknown = null;
    if (text) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = null;
      }
    }
    if (!res.ok) {
      if (res.status === 401 && !path.startsWith("/api/v1/session")) this.onUnauthorized?.();
      throw new ApiError(res.status, errorMessage(res.status, parsed));
    }
    return parsed as T;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>("POST", path, body);
  }

  /** Sign in with a pasted token: the gateway answers the session and sets its cookie. */
  async signIn(token: string): Promise<Session> {
    try {
      const s = await this.post<Session>("/api/v1/session", { token });
      this.csrf = s.csrf;
      this.devBearer = null;
      return s;
    } catch (err) {
      // DEVELOPMENT ONLY: a gateway without the session routes (before they landed) answers 404;
      // the app then sends the token as a bearer header from memory so pages can be tried out.
      // A gateway with sessions never takes this path.
      if (err instanceof ApiError && err.status === 404) {
        this.devBearer = token;
        const { projects } = await this.get<{ projects: { name: string }[] }>("/api/v1/registry/projects");
        return {
          user: "(development: bearer token)",
          kind: "dev",
          site_admin: false,
          projects: Object.fromEntries(projects.map((p) => [p.name, "viewer" as const])),
          csrf: "",
        };
      }
      throw err;
    }
  }

  /** The current session (a fresh read of roles), or null when there is none. */
  async current(): Promise<Session | null> {
    try {
      const s = await this.get<Session>("/api/v1/session");
      this.csrf = s.csrf;
      return s;
    } catch (err) {
      if (err instanceof ApiError && (err.status === 401 || err.status === 404)) return null;
      throw err;
    }
  }

  async signOut(): Promise<void> {
    if (!this.devBearer) await this.request<void>("DELETE", "/api/v1/session");
    this.csrf = null;
    this.devBearer = null;
  }
}

/** URL path segment, encoded (project names and run ids go into paths). */
export function seg(s: string): string {
  return encodeURIComponent(s);
}
