// Projects the caller is a member of, with the caller's role in each.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { roleIn } from "../lib/roles";
import type { Session } from "../lib/types";

interface Project {
  name: string;
  description: string;
  archived?: number | boolean;
}

export function Projects({ session, navigate }: { session: Session; navigate: Navigate }) {
  const [projects, setProjects] = useState<Project[] | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.get<{ projects: Project[] }>("/api/v1/registry/projects").then((b) => setProjects(b.projects),
      (e: Error) => setError(e.message));
  }, []);

  return (
    <section>
      <h1>Projects</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {!projects && !error && <p role="status">Loading…</p>}
      {projects && projects.length === 0 && <p>No projects yet. Create one with <code>cairn.start_run</code> or the API.</p>}
      {projects && projects.length > 0 && (
        <table class="list">
          <thead><tr><th scope="col">Project</th><th scope="col">Your role</th><th scope="col">Description</th></tr></thead>
          <tbody>
            {projects.map((p) => (
              <tr key={p.name}>
                <td>
                  <a href={`/projects/${encodeURIComponent(p.name)}/runs`}
                     onClick={(e) => { e.preventDefault(); navigate({ page: "runs", project: p.name }); }}>{p.name}</a>
                </td>
                <td>{roleIn(session, p.name) ?? "—"}</td>
                <td>{p.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
