// Experiments: the shape the registry answers and the link from an experiment to the runs table
// filtered to it (the registry's search syntax, `experiment_id = '<id>'`), read back by Runs.tsx.

export interface Experiment {
  id: string;
  name: string;
  description: string;
  archived: number | boolean;
  created_at: string;
  created_by?: string;
  tags: Record<string, string>;
}

/** The runs-search filter that keeps one experiment's runs. */
export function experimentFilter(id: string): string {
  return `experiment_id = '${id.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** The runs table's path with an initial filter (`?filter=`). */
export function runsHref(project: string, filter: string): string {
  return `/projects/${encodeURIComponent(project)}/runs?${new URLSearchParams({ filter })}`;
}

/** The initial filter a runs link carries (`?filter=`), or "". */
export function initialFilter(search: string): string {
  return (new URLSearchParams(search).get("filter") ?? "").trim();
}

/** What a name field holds is acceptable, or the message saying what to fix. */
export function nameProblem(name: string): string | null {
  const s = name.trim();
  if (!s) return "give the experiment a name";
  if (s.length > 256) return "a name has at most 256 characters";
  return null;
}
