// Client-side routes (History API). The gateway answers index.html for any non-API path, so a
// reload of /projects/x/runs/y lands back here.

export type Route =
  | { page: "signin" }
  | { page: "projects" }
  | { page: "runs"; project: string }
  | { page: "run"; project: string; runId: string }
  | { page: "notfound"; path: string };

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { page: "signin" };
  if (parts[0] === "projects") {
    if (parts.length === 1) return { page: "projects" };
    if (parts.length === 3 && parts[2] === "runs") return { page: "runs", project: parts[1]! };
    if (parts.length === 4 && parts[2] === "runs") return { page: "run", project: parts[1]!, runId: parts[3]! };
  }
  return { page: "notfound", path };
}

export function routePath(r: Route): string {
  const e = encodeURIComponent;
  switch (r.page) {
    case "signin": return "/";
    case "projects": return "/projects";
    case "runs": return `/projects/${e(r.project)}/runs`;
    case "run": return `/projects/${e(r.project)}/runs/${e(r.runId)}`;
    case "notfound": return r.path;
  }
}
