// Bulk actions on the runs table (tag, archive, restore): the tag input's parsing, running one
// request per selected run with progress, and the summary of what happened. Pure, so tested alone.

export type ParsedTag = { key: string; value: string } | { error: string };

/** `key=value` (the value may hold `=` and be empty; the key may not hold `/`, which the route's
 * path cannot carry). */
export function parseTag(text: string): ParsedTag {
  const s = text.trim();
  const at = s.indexOf("=");
  if (at < 0) return { error: "write the tag as key=value, e.g. stage=candidate" };
  const key = s.slice(0, at).trim();
  const value = s.slice(at + 1).trim();
  if (!key) return { error: "the tag needs a key before the =, e.g. stage=candidate" };
  if (key.includes("/")) return { error: "a tag key may not contain /" };
  if (key.length > 250) return { error: "a tag key has at most 250 characters" };
  return { key, value };
}

export interface BulkOutcome { id: string; ok: boolean; error?: string }

/** Apply `act` to each id, at most `parallel` at a time, reporting each outcome as it lands; a
 * failure of one run never stops the others. Outcomes come back in the ids' order. */
export async function runBulk(ids: string[], act: (id: string) => Promise<unknown>,
                              onProgress?: (done: number, total: number) => void, parallel = 4): Promise<BulkOutcome[]> {
  const out: BulkOutcome[] = new Array(ids.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      const id = ids[i]!;
      try {
        await act(id);
        out[i] = { id, ok: true };
      } catch (e) {
        out[i] = { id, ok: false, error: (e as Error).message };
      }
      onProgress?.(++done, ids.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, ids.length)) }, worker));
  return out;
}

/** "Tagged 2 runs." / "Archived 1 of 3 runs; 2 failed." */
export function bulkSummary(verb: string, outcomes: BulkOutcome[]): string {
  const ok = outcomes.filter((o) => o.ok).length;
  const failed = outcomes.length - ok;
  const runs = (n: number) => `${n} run${n === 1 ? "" : "s"}`;
  if (failed === 0) return `${verb} ${runs(ok)}.`;
  return `${verb} ${ok} of ${runs(outcomes.length)}; ${failed} failed.`;
}
