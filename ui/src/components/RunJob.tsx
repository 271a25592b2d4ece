// When a run came from a job (the scheduler tags its run `cairn.job_id`): a link to the job's
// page and the tail of its current attempt's log, read once (the job page follows it live).
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { seg } from "../lib/api";
import { logsUrl } from "../lib/logs";
import { routePath } from "../lib/router";
import { tailLines } from "../lib/runpage";

const TAIL = 40;

export function RunJob({ project, jobId, navigate }: { project: string; jobId: string; navigate: Navigate }) {
  const [status, setStatus] = useState<string | null>(null);
  const [log, setLog] = useState<{ lines: string[]; cut: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api.get<{ status: string }>(`/api/v1/scheduler/projects/${seg(project)}/jobs/${seg(jobId)}`)
      .then((j) => setStatus(j.status), (e: Error) => setError(e.message));
    const ctl = new AbortController();
    fetch(logsUrl(project, jobId, false), { credentials: "same-origin", signal: ctl.signal, headers: api.headers("GET", false) })
      .then(async (r) => { if (r.ok) setLog(tailLines(await r.text(), TAIL)); })
      .catch(() => undefined);
    return () => ctl.abort();
  }, [project, jobId]);
  const to = { page: "job" as const, project, jobId };

  return (
    <section aria-labelledby="run-job-h">
      <h2 id="run-job-h">Job</h2>
      <p>This run came from job <a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>
        <code>{jobId}</code></a>{status && <> <span class={`badge status-${status}`}>{status}</span></>}</p>
      {error && <p class="error" role="alert">{error}</p>}
      {log && (
        <>
          <h3>Log tail{log.cut > 0 ? ` (last ${log.lines.length} lines; ${log.cut} earlier on the job page)` : ""}</h3>
          {log.lines.length === 0 ? <p class="help">The log is empty.</p>
            : <pre class="run-log" tabIndex={0} aria-label="The job's log tail">{log.lines.join("\n")}</pre>}
        </>
      )}
    </section>
  );
}
