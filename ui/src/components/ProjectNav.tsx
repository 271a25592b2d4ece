// The project's page links (runs, experiments, models, datasets, jobs, sweeps, pipelines,
// deployments, members, webhooks) under the breadcrumb: plain links that navigate
// in the page, with the current one marked for assistive technology.
import type { Navigate } from "../client";
import type { Route } from "../lib/router";
import { routePath } from "../lib/router";
import type { Role } from "../lib/types";

type Section = "runs" | "experiments" | "models" | "datasets" | "jobs" | "sweeps" | "pipelines" | "deployments" | "members" | "webhooks";

/** `role`, when given, hides the admin-only Webhooks link from non-admins (pages that do not pass
 * it show every link; the gateway refuses what the role may not do either way). */
export function ProjectNav({ project, current, navigate, role }: { project: string; current: Section | null; navigate: Navigate; role?: Role | null }) {
  const links: [Section, string, Route][] = [
    ["runs", "Runs", { page: "runs", project }],
    ["experiments", "Experiments", { page: "experiments", project }],
    ["models", "Models", { page: "models", project }],
    ["datasets", "Datasets", { page: "datasets", project }],
    ["jobs", "Jobs", { page: "jobs", project }],
    ["sweeps", "Sweeps", { page: "sweeps", project }],
    ["pipelines", "Pipelines", { page: "pipelines", project }],
    ["deployments", "Deployments", { page: "deployments", project }],
    ["members", "Members", { page: "members", project }],
    ["webhooks", "Webhooks", { page: "webhooks", project }],
  ].filter(([id]) => id !== "webhooks" || role === undefined || role === "admin") as [Section, string, Route][];
  return (
    <nav aria-label={`Project ${project}`} class="subnav">
      {links.map(([id, label, r]) => (
        <a key={id} href={routePath(r)} aria-current={current === id ? "page" : undefined}
           onClick={(e) => { e.preventDefault(); navigate(r); }}>{label}</a>
      ))}
    </nav>
  );
}

/** The breadcrumb every project page starts with: Projects / <project> / <here>. */
export function Crumbs({ project, here, navigate }: { project: string; here?: string; navigate: Navigate }) {
  return (
    <nav aria-label="Breadcrumb" class="crumbs">
      <a href="/projects" onClick={(e) => { e.preventDefault(); navigate({ page: "projects" }); }}>Projects</a>
      <span aria-hidden="true"> / </span>
      {here
        ? <a href={routePath({ page: "runs", project })}
             onClick={(e) => { e.preventDefault(); navigate({ page: "runs", project }); }}>{project}</a>
        : <span>{project}</span>}
      {here && <><span aria-hidden="true"> / </span><span>{here}</span></>}
    </nav>
  );
}
