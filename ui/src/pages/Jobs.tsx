// A project's jobs (queue, state, run) kept live from the event stream, and one job: its facts,
// history, a cancel button for editors and its log followed live (a streaming fetch of the logs
// route with follow=true, appended as it arrives; it stays at the bottom unless the reader
// scrolled up).
import { useEffect, useRef, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import { applyJobEvent, FINAL_STATES, JOB_EVENTS, jobStreamUrl, type Job } from "../lib/jobs";
import { appendChunk, atBottom, EMPTY_LOG, followStream, logsUrl, type LogState } from "../lib/logs";
import { can, roleIn } from "../lib/roles";
import { routePath } from "../lib/router";
import type { Session } from "../lib/types";

const jobsUrl = (project: string) => `/api/v1/scheduler/projects/${seg(project)}/jobs`;

interface ListProps { project: string; session: Session; navigate: Navigate }

export function Jobs({ project, session, navigate }: ListProps) {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const live = useEventStream(jobStreamUrl(project), JOB_EVENTS, (e) => setJobs((cur) => (cur ? applyJobEvent(cur, e, project) : cur)));

  // loaded at first and again once the stream is live (events between the two are not replayed)
  useEffect(() => {
    api.get<{ jobs: Job[] }>(`${jobsUrl(project)}?limit=1000`).then((b) => setJobs(b.jobs), (e: Error) => setError(e.message));
  }, [project, live === "live"]);

  return (
    <section>
      <Crumbs project={project} navigate={navigate} />
      <ProjectNav project={project} current="jobs" navigate={navigate} />
      <h1>Jobs of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{jobs ? `${jobs.length.toLocaleString("en")} jobs` : "Loading…"} · <LiveState live={live} /></p>
      {jobs && jobs.length > 0 && (
        <table class="list jobs">
          <thead><tr><th scope="col">Job</th><th scope="col">Queue</th><th scope="col">State</th><th scope="col">Attempt</th>
            <th scope="col">Run</th><th scope="col">Submitted</th></tr></thead>
          <tbody>
            {jobs.map((j) => {
              const to = { page: "job" as const, project, jobId: j.id };
              const run = j.run_id ? { page: "run" as const, project, runId: j.run_id } : null;
              return (
                <tr key={j.id}>
                  <th scope="row"><a href={routePath(to)} onClick={(e) => { e.preventDefault(); navigate(to); }}>{j.name || j.id}</a></th>
                  <td>{j.queue}</td>
                  <td class={`status-${j.status}`}>{j.status}{j.cancel_requested && !FINAL_STATES.has(j.status) ? " (cancelling)" : ""}</td>
                  <td>{j.attempt}</td>
                  <td>{run ? <a href={routePath(run)} onClick={(e) => { e.preventDefault(); navigate(run); }}>{j.run_id}</a> : "—"}</td>
                  <td>{j.submitted_at ?? ""}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}

interface JobProps { project: string; jobId: string; session: Session; navigate: Navigate }

export function JobPage({ project, jobId, session, navigate }: JobProps) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [log, setLog] = useState<LogState>(EMPTY_LOG);
  const [following, setFollowing] = useState(false);
  const [busy, setBusy] = useState(false);
  const pane = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  const url = `${jobsUrl(project)}/${seg(jobId)}`;
  const reload = () => api.get<Job>(url).then(setJob, (e: Error) => setError(e.message));

  const live = useEventStream(jobStreamUrl(project), JOB_EVENTS, (e) => {
    if (e.aggregate_id !== jobId) return;
    setJob((cur) => (cur ? applyJobEvent([cur], e, project)[0]! : cur));
  });

  useEffect(() => { void reload(); }, [project, jobId]);
  // An event published between the first load and the stream's connection is not replayed:
  // read the job again once the stream is live.
  useEffect(() => { if (live === "live") void reload(); }, [live]);

  // Follow the log of the current attempt; a new attempt (a retry) starts a new follow.
  const attempt = job?.attempt;
  useEffect(() => {
    if (attempt === undefined) return;
    const ctl = new AbortController();
    setLog(EMPTY_LOG);
    setFollowing(true);
    fetch(logsUrl(project, jobId, true), { credentials: "same-origin", signal: ctl.signal, headers: api.headers("GET", false) })
      .then(async (res) => {
        if (!res.ok || !res.body) {
          const body: unknown = await res.json().catch(() => null);
          const msg = (body as { error?: { message?: string } } | null)?.error?.message;
          throw new Error(msg ?? `the log could not be read (HTTP ${res.status})`);
        }
        await followStream(res.body, (s) => setLog((cur) => appendChunk(cur, s)), ctl.signal);
      })
      .catch((e: Error) => { if (!ctl.signal.aborted) setError(e.message); })
      .finally(() => {
        if (ctl.signal.aborted) return;
        setFollowing(false);
        void reload(); // the attempt ended: its final state, even if its event came before the stream did
      });
    return () => ctl.abort();
  }, [project, jobId, attempt]);

  useEffect(() => {
    const el = pane.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [log]);

  const cancel = async () => {
    setBusy(true);
    try {
      setJob(await api.post<Job>(`${url}/cancel`, {}));
      setError(null);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const run = job?.run_id ? { page: "run" as const, project, runId: job.run_id } : null;
  const ended = job ? FINAL_STATES.has(job.status) : false;
  return (
    <section>
      <Crumbs project={project} here={`job ${jobId}`} navigate={navigate} />
      <ProjectNav project={project} current="jobs" navigate={navigate} />
      <h1>Job {job?.name || jobId} {job && <span class={`badge status-${job.status}`}>{job.status}</span>}</h1>
      {error && <p class="error" role="alert">{error}</p>}
      {job && (
        <>
          <dl class="facts">
            <dt>Queue</dt><dd>{job.queue}</dd>
            <dt>Attempt</dt><dd>{job.attempt}</dd>
            <dt>Run</dt><dd>{run ? <a href={routePath(run)} onClick={(e) => { e.preventDefault(); navigate(run); }}>{job.run_id}</a> : "—"}</dd>
            <dt>Submitted</dt><dd>{job.submitted_at ?? ""}</dd>
            <dt>Started</dt><dd>{job.started_at ?? "not yet"}</dd>
            <dt>Ended</dt><dd>{job.ended_at ?? (ended ? "" : "not yet")}</dd>
            {job.exit_code !== null && <><dt>Exit code</dt><dd>{job.exit_code}</dd></>}
            {job.message && <><dt>Message</dt><dd>{job.message}</dd></>}
          </dl>
          {can(roleIn(session, project), "job.cancel") && !ended && (
            <p><button type="button" disabled={busy || job.cancel_requested} onClick={() => void cancel()}>
              {job.cancel_requested ? "Cancelling…" : "Cancel job"}</button></p>
          )}
        </>
      )}
      <h2>Log <span class="help">attempt {attempt ?? "…"} · {following ? "following" : "ended"} · <LiveState live={live} /></span></h2>
      <pre class="log" ref={pane} tabIndex={0} aria-label={`Log of job ${jobId}`} aria-live="off"
           onScroll={(e) => {
             const el = e.currentTarget as HTMLPreElement;
             stick.current = atBottom(el.scrollTop, el.clientHeight, el.scrollHeight);
           }}>{log.text || (following ? "waiting for output…" : "no output")}</pre>
    </section>
  );
}
