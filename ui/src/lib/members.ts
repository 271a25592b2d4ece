// The two-step confirm the members, tokens and webhooks pages use for removals: the first click
// arms the button for one item, the second (on the same item) does it; anything else disarms.

export type Confirm = { armed: string | null };

export const IDLE: Confirm = { armed: null };

/** A click on `id`'s remove button: arms it, or answers `go: true` when it was already armed. */
export function clickRemove(state: Confirm, id: string): { state: Confirm; go: boolean } {
  if (state.armed === id) return { state: IDLE, go: true };
  return { state: { armed: id }, go: false };
}

/** The button's label for `id` in `state`. */
export function removeLabel(state: Confirm, id: string, verb = "Remove"): string {
  return state.armed === id ? `Confirm: ${verb.toLowerCase()} ${id}` : verb;
}

export const ROLES = ["viewer", "editor", "admin"] as const;

export interface Member { user: string; role: "viewer" | "editor" | "admin"; updated_at: string }

/** A `member.added` / `member.removed` event of the stream applied to the list (sorted by user),
 * as the gateway's projection does. The list is not read again on an event: the event can reach
 * the page before the gateway's read model has it, and a re-read could then undo a newer answer. */
export function applyMemberEvent(list: Member[], e: { type: string; data: Record<string, unknown>; time: string }): Member[] {
  const user = typeof e.data.user === "string" ? e.data.user : null;
  if (!user) return list;
  const rest = list.filter((m) => m.user !== user);
  if (e.type === "member.removed") return rest;
  const role = e.data.role;
  if (e.type !== "member.added" || (role !== "viewer" && role !== "editor" && role !== "admin")) return list;
  return [...rest, { user, role: role as Member["role"], updated_at: e.time }].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}
