// Client-side routes (History API). The gateway answers index.html for any non-API path, so a
// reload of /projects/x/runs/y lands back here.

export type Route =
  | { page: "signin" }
  | { page: "projects" }
  | { page: "runs"; project: string }
  | { page: "run"; project: string; runId: string }
  | { page: "models"; project: string }
  | { page: "model"; project: string; model: string }
  | { page: "compare"; project: string; runs: string[] }
  | { page: "jobs"; project: string }
  | { page: "job"; project: string; jobId: string }
  | { page: "pipelines"; project: string }
  | { page: "pipeline"; project: string; runId: string }
  | { page: "experiments"; project: string }
  | { page: "members"; project: string }
  | { page: "datasets"; project: string }
  | { page: "dataset"; project: string; name: string }
  | { page: "sweeps"; project: string }
  | { page: "sweep"; project: string; sweepId: string }
  | { page: "deployments"; project: string }
  | { page: "deployment"; project: string; name: string }
  | { page: "webhooks"; project: string }
  | { page: "agents" }
  | { page: "audit" }
  | { page: "tokens" }
  | { page: "notfound"; path: string };

/** The run ids of a compare link's `?runs=a,b,c` (empty and repeated ids dropped). */
export function compareRuns(search: string): string[] {
  const raw = new URLSearchParams(search).get("runs") ?? "";
  return [...new Set(raw.split(",").map((s) => s.trim()).filter(Boolean))];
}

export function parseRoute(path: string, search = ""): Route {
  const parts = path.split("/").filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts.length === 0) return { page: "signin" };
  if (parts.length === 1 && parts[0] === "agents") return { page: "agents" };
  if (parts.length === 1 && parts[0] === "audit") return { page: "audit" };
  if (parts.length === 1 && parts[0] === "tokens") return { page: "tokens" };
  if (parts[0] === "projects") {
    if (parts.length === 1) return { page: "projects" };
    if (parts.length === 3 && parts[2] === "runs") return { page: "runs", project: parts[1]! };
    if (parts.length === 4 && parts[2] === "runs") return { page: "run", project: parts[1]!, runId: parts[3]! };
    const p = parts[1]!;
    if (parts.length === 3 && parts[2] === "models") return { page: "models", project: p };
    if (parts.length === 4 && parts[2] === "models") return { page: "model", project: p, model: parts[3]! };
    if (parts.length === 3 && parts[2] === "compare") return { page: "compare", project: p, runs: compareRuns(search) };
    if (parts.length === 3 && parts[2] === "jobs") return { page: "jobs", project: p };
    if (parts.length === 4 && parts[2] === "jobs") return { page: "job", project: p, jobId: parts[3]! };
    if (parts.length === 3 && parts[2] === "pipelines") return { page: "pipelines", project: p };
    if (parts.length === 4 && parts[2] === "pipelines") return { page: "pipeline", project: p, runId: parts[3]! };
    if (parts.length === 3 && parts[2] === "experiments") return { page: "experiments", project: p };
    if (parts.length === 3 && parts[2] === "members") return { page: "members", project: p };
    if (parts.length === 3 && parts[2] === "datasets") return { page: "datasets", project: p };
    if (parts.length === 4 && parts[2] === "datasets") return { page: "dataset", project: p, name: parts[3]! };
    if (parts.length === 3 && parts[2] === "sweeps") return { page: "sweeps", project: p };
    if (parts.length === 4 && parts[2] === "sweeps") return { page: "sweep", project: p, sweepId: parts[3]! };
    if (parts.length === 3 && parts[2] === "deployments") return { page: "deployments", project: p };
    if (parts.length === 4 && parts[2] === "deployments") return { page: "deployment", project: p, name: parts[3]! };
    if (parts.length === 3 && parts[2] === "webhooks") return { page: "webhooks", project: p };
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
    case "models": return `/projects/${e(r.project)}/models`;
    case "model": return `/projects/${e(r.project)}/models/${e(r.model)}`;
    case "compare": return `/projects/${e(r.project)}/compare?runs=${r.runs.map(e).join(",")}`;
    case "jobs": return `/projects/${e(r.project)}/jobs`;
    case "job": return `/projects/${e(r.project)}/jobs/${e(r.jobId)}`;
    case "pipelines": return `/projects/${e(r.project)}/pipelines`;
    case "pipeline": return `/projects/${e(r.project)}/pipelines/${e(r.runId)}`;
    case "experiments": return `/projects/${e(r.project)}/experiments`;
    case "members": return `/projects/${e(r.project)}/members`;
    case "datasets": return `/projects/${e(r.project)}/datasets`;
    case "dataset": return `/projects/${e(r.project)}/datasets/${e(r.name)}`;
    case "sweeps": return `/projects/${e(r.project)}/sweeps`;
    case "sweep": return `/projects/${e(r.project)}/sweeps/${e(r.sweepId)}`;
    case "deployments": return `/projects/${e(r.project)}/deployments`;
    case "deployment": return `/projects/${e(r.project)}/deployments/${e(r.name)}`;
    case "webhooks": return `/projects/${e(r.project)}/webhooks`;
    case "agents": return "/agents";
    case "audit": return "/audit";
    case "tokens": return "/tokens";
    case "notfound": return r.path;
  }
}

/**
 * Where an MLflow "View run" link lands: MLflow prints `<tracking URI>/#/experiments/<exp>/runs/
 * <run>` (or `#/experiments/<exp>`), so with the plain tracking URI (the gateway, project
 * `default`) the browser opens `/` with that fragment. The path in Cairn's app, or null when the
 * fragment is not one of MLflow's. (`/mlflow/<project>/` links are answered by the gateway.)
 */
export function mlflowLinkPath(hash: string, project = "default"): string | null {
  const route = hash.replace(/^#\/?/, "").split("?")[0]!.split("/").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (route[0] !== "experiments" || !route[1]) return null;
  const base = `/projects/${encodeURIComponent(project)}`;
  if (route[2] === "runs" && route[3]) return `${base}/runs/${encodeURIComponent(route[3])}`;
  if (route[1] === "0") return `${base}/runs`; // MLflow's default experiment; Cairn's has an id of its own
  const filter = `experiment_id = '${route[1].replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  return `${base}/runs?${new URLSearchParams({ filter })}`;
}
