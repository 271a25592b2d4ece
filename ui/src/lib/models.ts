// The models page's rules: which alias controls a role gets. The registry checks the same rules
// (docs/access.md): an editor points any alias but `production`, which needs an admin, and only an
// admin removes an alias. A control the caller may not use is not rendered at all.
import { can } from "./roles";
import type { Role } from "./types";

/** Aliases only an admin may point (any case), as the registry's ADMIN_ONLY_ALIASES. */
export const ADMIN_ONLY_ALIASES = new Set(["production"]);

/** The registry's alias names: `[A-Za-z][A-Za-z0-9_-]{0,63}`. */
export const ALIAS_RE = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

/** May `role` point `alias` at a version? */
export function canSetAlias(role: Role | null | undefined, alias: string): boolean {
  return ADMIN_ONLY_ALIASES.has(alias.toLowerCase()) ? can(role, "alias.move") : can(role, "alias.set");
}

/** May `role` remove an alias? */
export function canRemoveAlias(role: Role | null | undefined): boolean {
  return can(role, "alias.remove");
}

/** Does the role get any alias control at all (the "Point an alias" form)? */
export function hasAliasControls(role: Role | null | undefined): boolean {
  return can(role, "alias.set");
}

/** What is wrong with an alias name typed into the form (null when it is fine for this role). */
export function aliasProblem(role: Role | null | undefined, alias: string): string | null {
  if (!ALIAS_RE.test(alias)) return "an alias starts with a letter, then letters, digits, _ or - (64 at most)";
  if (!canSetAlias(role, alias)) return `pointing ${alias} needs the admin role`;
  return null;
}

export interface AliasChange {
  seq: number;
  alias: string;
  action: string;
  version: number | null;
  previous_version: number | null;
  time: string;
  actor: string;
}

/** One history line in words: "set to v3 (was v2)", "removed (was v3)". */
export function describeChange(c: AliasChange): string {
  if (c.action === "removed") {
    const gone = c.version ?? c.previous_version; // a removal records the version it pointed at
    return gone != null ? `removed (was v${gone})` : "removed";
  }
  const was = c.previous_version != null ? ` (was v${c.previous_version})` : "";
  return `set to v${c.version}${was}`;
}
