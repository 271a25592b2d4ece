// A project's runs: search (server side, the registry's syntax), then sort, pick columns and
// scroll in the page; new and changed runs arrive over the event stream without a reload.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { LiveState, useEventStream } from "../components/EventStream";
import { FilterBox } from "../components/FilterBox";
import { BulkActions, type BulkDone } from "../components/BulkActions";
import { RunsGrid } from "../components/RunsGrid";
import { seg } from "../lib/api";
import { columnId, DEFAULT_COLUMNS, nextSort, sortRuns, toggleColumn, type Column, type Sort } from "../lib/columns";
import { vocabulary } from "../lib/completion";
import { initialFilter } from "../lib/experiments";
import { appendPage, applyEvent, streamUrl } from "../lib/live";
import { roleIn } from "../lib/roles";
import { routePath } from "../lib/router";
import { ProjectNav } from "../components/ProjectNav";
import type { MetricSummary, Run, RunMetrics, Session } from "../lib/types";

/** The table holds at most this many runs (pages of 1,000 from the registry). */
export const MAX_RUNS = 10_000;
const RUN_EVENTS = ["run.created", "run.started", "run.finished", "run.params_logged", "run.tag_set",
  "run.tag_deleted", "run.updated", "run.archived", "run.restored"];

interface SearchPage { runs: Run[]; next_page_token: string | null }

/** Load the matching runs page by page, handing each page over as it comes (the first page shows
 * at once; the rest of up to 10,000 fill in behind it). */
async function loadRuns(project: string, filter: string, onPage: (runs: Run[], first: boolean) => boolean,
                        includeArchived = false): Promise<{ runs: Run[]; capped: boolean }> {
  const runs: Run[] = [];
  let token: string | null = null;
  do {
    const page: SearchPage = await api.post<SearchPage>(`/api/v1/registry/projects/${seg(project)}/runs/search`,
      { filter: filter || null, page_size: 1000, page_token: token, include_archived: includeArchived });
    if (!onPage(page.runs, runs.length === 0)) break;
    runs.push(...page.runs);
    token = page.next_page_token;
  } while (token && runs.length < MAX_RUNS);
  return { runs, capped: !!token };
}

async function loadMetrics(project: string, runs: Run[]): Promise<RunMetrics> {
  const out: RunMetrics = {};
  for (let i = 0; i < runs.length; i += 1000) {
    const ids = runs.slice(i, i + 1000).map((r) => r.id);
    const b = await api.post<{ runs: Record<string, MetricSummary[]> }>(
      `/api/v1/metrics/projects/${seg(project)}/metrics/summaries/runs`, { run_ids: ids });
    for (const [id, sums] of Object.entries(b.runs)) out[id] = Object.fromEntries(sums.map((s) => [s.key, s.last]));
  }
  return out;
}

interface Props { project: string; session: Session; navigate: Navigate }

export function Runs({ project, session, navigate }: Props) {
  // A link may open the table filtered (`?filter=`, e.g. an experiment's runs).
  const [start] = useState(() => initialFilter(location.search));
  const [text, setText] = useState(start);
  const [showArchived, setShowArchived] = useState(false);
  const archivedRef = useRef(showArchived);
  archivedRef.current = showArchived;
  const [filter, setFilter] = useState("");
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [capped, setCapped] = useState(false);
  const [metrics, setMetrics] = useState<RunMetrics>({});
  const [error, setError] = useState<string | null>(null);
  const [sort, setSort] = useState<Sort | null>(null);
  const [columns, setColumns] = useState<Column[]>(DEFAULT_COLUMNS);
  const [picked, setPicked] = useState<Set<string>>(() => new Set());
  const generation = useRef(0);
  const filterRef = useRef(filter);
  filterRef.current = filter;

  const search = async (f: string, withArchived = archivedRef.current) => {
    const g = ++generation.current;
    setError(null);
    try {
      const loaded = await loadRuns(project, f, (page, first) => {
        if (g !== generation.current) return false;
        if (first) {
          setFilter(f);
          setMetrics({});
        }
        setRuns((rows) => (first || !rows ? page : appendPage(rows, page)));
        return true;
      }, withArchived);
      if (g !== generation.current) return;
      setCapped(loaded.capped);
      const m = await loadMetrics(project, loaded.runs);
      if (g === generation.current) setMetrics(m);
    } catch (e) {
      if (g === generation.current) setError((e as Error).message);
    }
  };

  useEffect(() => { void search(start); }, [project]);

  // With a filter, a new run may not match: ask the server (the one that knows the syntax), once
  // for a burst of new runs.
  const refetch = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => () => clearTimeout(refetch.current), [project]);
  const live = useEventStream(streamUrl(project), RUN_EVENTS, (e) => {
    setRuns((cur) => {
      if (!cur) return cur;
      if (e.project === project && (e.type === "run.archived" || e.type === "run.restored")) {
        // With archived runs shown, archiving marks the row; without, it leaves the table.
        const archived = e.type === "run.archived";
        if (archivedRef.current) return cur.map((r) => (r.id === e.aggregate_id ? { ...r, archived } : r));
        if (!archived) return cur;
      }
      const r = applyEvent(cur, e, project);
      if (r.added && filterRef.current) {
        clearTimeout(refetch.current);
        refetch.current = setTimeout(() => void search(filterRef.current), 300);
        return cur;
      }
      return r.runs;
    });
  });

  const vocab = useMemo(() => vocabulary(runs ?? [], metrics), [runs, metrics]);
  const shown = useMemo(() => sortRuns(runs ?? [], sort, metrics), [runs, sort, metrics]);
  const chosen = new Set(columns.map(columnId));
  const open = (r: Run) => navigate({ page: "run", project, runId: r.id });

  // A bulk action's successes change the rows at once (the events that follow agree).
  const bulkDone = (d: BulkDone) => {
    const ok = new Set(d.outcomes.filter((o) => o.ok).map((o) => o.id));
    if (d.kind === "tag") {
      setRuns((cur) => cur && cur.map((r) => (ok.has(r.id) ? { ...r, tags: { ...r.tags, [d.key]: d.value } } : r)));
      const c: Column = { kind: "tags", key: d.key };
      setColumns((cols) => (cols.some((x) => columnId(x) === columnId(c)) ? cols : toggleColumn(cols, c)));
    } else if (d.kind === "archive" && !showArchived) {
      setRuns((cur) => cur && cur.filter((r) => !ok.has(r.id)));
      setPicked((cur) => new Set([...cur].filter((id) => !ok.has(id))));
    } else {
      const archived = d.kind === "archive";
      setRuns((cur) => cur && cur.map((r) => (ok.has(r.id) ? { ...r, archived } : r)));
    }
  };

  return (
    <section>
      <nav aria-label="Breadcrumb" class="crumbs">
        <a href="/projects" onClick={(e) => { e.preventDefault(); navigate({ page: "projects" }); }}>Projects</a>
        <span aria-hidden="true"> / </span><span>{project}</span>
      </nav>
      <ProjectNav project={project} current="runs" navigate={navigate} />
      <h1>Runs of {project} <span class="role">your role: {roleIn(session, project) ?? "none"}</span></h1>
      <FilterBox value={text} vocab={vocab} onChange={setText} onSubmit={(f) => void search(f.trim())} />
      {error && <p class="error" role="alert">{error}</p>}
      <div class="toolbar">
        <p role="status" class="count">
          {runs ? `${runs.length.toLocaleString("en")} runs${capped ? ` (the first ${MAX_RUNS.toLocaleString("en")}; narrow the filter)` : ""}` : "Loading…"}
          {" · "}<LiveState live={live} />
        </p>
        {(() => {
          const ids = (runs ?? []).filter((r) => picked.has(r.id)).map((r) => r.id);
          const to = { page: "compare" as const, project, runs: ids };
          return (
            <span class="compare-bar">
              <span class="help" id="picked-count">{ids.length} selected (Space or the checkbox selects a row)</span>
              {ids.length >= 2
                ? <a class="button" href={routePath(to)} aria-describedby="picked-count"
                     onClick={(e) => { e.preventDefault(); navigate(to); }}>Compare {ids.length} runs</a>
                : <button type="button" disabled aria-describedby="picked-count">Compare (select 2 or more)</button>}
              {ids.length > 0 && <button type="button" onClick={() => setPicked(new Set())}>Clear selection</button>}
              <BulkActions project={project} role={roleIn(session, project)} ids={ids} showArchived={showArchived}
                           names={Object.fromEntries((runs ?? []).filter((r) => picked.has(r.id)).map((r) => [r.id, r.name]))}
                           onDone={bulkDone} />
            </span>
          );
        })()}
        <span>
          <input id="runs-archived" type="checkbox" checked={showArchived} onChange={(e) => {
            const on = (e.target as HTMLInputElement).checked;
            setShowArchived(on);
            void search(filterRef.current, on);
          }} />
          <label for="runs-archived">Show archived runs</label>
        </span>
        <details class="picker" onKeyDown={(e) => {
          if (e.key === "Escape") {
            const d = e.currentTarget as HTMLDetailsElement;
            d.open = false;
            d.querySelector("summary")?.focus();
          }
        }}>
          <summary>Columns</summary>
          <fieldset>
            <legend>Columns to show</legend>
            {(["params", "metrics", "tags"] as const).map((kind) => (
              <div class="group" key={kind}>
                <h3>{kind}</h3>
                {vocab[kind].length === 0 && <p class="help">none in these runs</p>}
                {vocab[kind].map((key) => {
                  const c: Column = { kind, key };
                  const id = `col-${kind}-${key}`;
                  return (
                    <div key={id}>
                      <input type="checkbox" id={id} checked={chosen.has(columnId(c))}
                             onChange={() => setColumns((cols) => toggleColumn(cols, c))} />
                      <label for={id}>{key}</label>
                    </div>
                  );
                })}
              </div>
            ))}
          </fieldset>
        </details>
      </div>
      {runs && <RunsGrid runs={shown} metrics={metrics} columns={columns} sort={sort}
                         onSort={(c) => setSort((s) => nextSort(s, c))} onOpen={open}
                         runHref={(r) => `/projects/${seg(project)}/runs/${seg(r.id)}`}
                         selected={picked} onToggle={(r) => setPicked((cur) => {
                           const next = new Set(cur);
                           if (!next.delete(r.id)) next.add(r.id);
                           return next;
                         })} />}
    </section>
  );
}
