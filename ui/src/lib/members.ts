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
