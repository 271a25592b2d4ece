// One write at a time from a page: the buttons are disabled while it runs, and its outcome is one
// message line (the API's message on failure, cleared on success). Every page with write buttons
// uses this instead of a busy flag and a try/catch/finally of its own.
import { useState } from "preact/hooks";

export type Report = (message: string | null) => void;

/** Runs `what`, reporting its error's message to `report` (null when it succeeded); resolves to
 * whether it succeeded. Never throws. */
export async function runReported(what: () => Promise<unknown>, report: Report): Promise<boolean> {
  try {
    await what();
    report(null);
    return true;
  } catch (e) {
    report((e as Error).message);
    return false;
  }
}

/** `[busy, run]`: `run(what, report)` marks the page busy while `what` runs (see runReported). */
export function useAction(): [boolean, (what: () => Promise<unknown>, report: Report) => Promise<boolean>] {
  const [busy, setBusy] = useState(false);
  const run = async (what: () => Promise<unknown>, report: Report) => {
    setBusy(true);
    try {
      return await runReported(what, report);
    } finally {
      setBusy(false);
    }
  };
  return [busy, run];
}

/** After a live event, read again until the read shows it: a service answers a write before its
 * read model has applied the event (docs/architecture.md), so the first read after the event can
 * still miss it. `done` says whether a read has it; at most `tries` reads, `delayMs` apart. */
export async function reloadUntil<T>(load: () => Promise<T>, done: (value: T) => boolean,
                                     tries = 10, delayMs = 150): Promise<T> {
  let value = await load();
  for (let i = 1; i < tries && !done(value); i++) {
    await new Promise((r) => setTimeout(r, delayMs));
    value = await load();
  }
  return value;
}
