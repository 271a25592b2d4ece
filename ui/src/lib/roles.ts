// What a role may do in the app. Buttons a caller may not use are not rendered at all; the
// gateway enforces the same rules, this only keeps the page honest about them.
import type { Role, Session } from "./types";

const RANK: Record<Role, number> = { viewer: 1, editor: 2, admin: 3 };

/** The least role each action needs (later pages add theirs here). */
export const NEEDS = {
  view: "viewer",
  "run.edit": "editor",
  "run.tag": "editor",
  "alias.move": "admin", // pointing `production` (docs/access.md)
  "alias.set": "editor", // pointing any other alias
  "alias.remove": "admin", // deleting needs admin
  "job.cancel": "editor",
  "members.manage": "admin",
  "webhooks.manage": "admin", // the gateway's webhook routes are admin-only
  "audit.read": "admin", // a project's audit log: project admins (docs/access.md)
  "pipeline.cancel": "editor",
  "experiment.edit": "editor", // create, rename, describe
  "experiment.archive": "admin", // archive and restore
  "run.archive": "admin", // archive and restore runs (bulk, runs table)
  "deployment.scale": "editor", // protected environments also need admin: the API says so
  "deployment.rollback": "editor",
  "sweep.stop": "editor",
} as const satisfies Record<string, Role>;

export type Action = keyof typeof NEEDS;

export function can(role: Role | null | undefined, action: Action): boolean {
  if (!role || !(role in RANK)) return false;
  return RANK[role] >= RANK[NEEDS[action]];
}

/** Whether `role` is at least `needed` (an unknown role on either side: no). */
export function atLeast(role: Role | null | undefined, needed: Role): boolean {
  if (!role || !(role in RANK) || !(needed in RANK)) return false;
  return RANK[role] >= RANK[needed];
}

/** The caller's role in a project; site admins are admins everywhere. */
export function roleIn(session: Session, project: string): Role | null {
  if (session.site_admin) return "admin";
  return session.projects[project] ?? null;
}
