// A project's members and their roles: everyone who may view the project sees the list; admins
// add a member (user + role), change a role (the same route: adding an existing member sets the
// role) and remove one after a confirm step. Non-admins get no controls at all.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { useAction } from "../lib/action";
import { LiveState, useEventStream } from "../components/EventStream";
import { Crumbs, ProjectNav } from "../components/ProjectNav";
import { seg } from "../lib/api";
import { applyMemberEvent, clickRemove, IDLE, removeLabel, ROLES, type Confirm, type Member } from "../lib/members";
import { can, roleIn } from "../lib/roles";
import type { Role, Session } from "../lib/types";
import "./members.css";

const MEMBER_EVENTS = ["member.added", "member.removed"] as const;


export function Members({ project, session, navigate }: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  const p = project ?? "";
  const role = roleIn(session, p);
  const admin = can(role, "members.manage");
  const url = `/api/v1/projects/${seg(p)}/members`;
  const [members, setMembers] = useState<Member[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [user, setUser] = useState("");
  const [newRole, setNewRole] = useState<Role>("viewer");
  const [confirm, setConfirm] = useState<Confirm>(IDLE);
  const [busy, run] = useAction();

  const load = () => api.get<{ members: Member[] }>(url).then((b) => setMembers(b.members), (e: Error) => setError(e.message));
  // a member added, changed or removed elsewhere shows without a reload (each event applied in
  // place; the list is read again once the stream is live, as events before it are not replayed)
  const live = useEventStream(`/api/v1/events/stream?${new URLSearchParams({ project: p, types: "member.*" })}`,
                              MEMBER_EVENTS, (e) => setMembers((cur) => (cur ? applyMemberEvent(cur, e) : cur)));
  useEffect(() => { void load(); }, [url, live === "live"]);

  const write = (doIt: () => Promise<{ members: Member[] }>, onError: (m: string) => void) => run(async () => {
    const b = await doIt();
    setMembers(b.members);
  }, (m) => {
    if (m !== null) onError(m);
    else { setFormError(null); setError(null); }
  });

  const add = async (e: Event) => {
    e.preventDefault();
    if (await write(() => api.post(url, { user: user.trim(), role: newRole }), setFormError)) setUser("");
  };
  const setRole = (u: string, r: Role) => write(() => api.post(url, { user: u, role: r }), setError);
  const remove = (u: string) => {
    const next = clickRemove(confirm, u);
    setConfirm(next.state);
    if (next.go) void write(() => api.request("DELETE", `${url}/${seg(u)}`), setError);
  };

  return (
    <section>
      <Crumbs project={p} here="Members" navigate={navigate} />
      <ProjectNav project={p} current="members" navigate={navigate} role={role} />
      <h1>Members of {p} <span class="role">your role: {role ?? "none"}</span></h1>
      {error && <p class="error" role="alert">{error}</p>}
      <p role="status" class="count">{members ? `${members.length} members` : "Loading…"} · <LiveState live={live} /></p>
      {members && (
        <table class="list member-table">
          <caption class="help">A site admin is an admin in every project without being listed.</caption>
          <thead><tr><th scope="col">User</th><th scope="col">Role</th><th scope="col">Since</th>{admin && <th scope="col">Remove</th>}</tr></thead>
          <tbody>
            {members.map((m) => (
              <tr key={m.user}>
                <th scope="row">{m.user}</th>
                <td>{admin
                  ? <select aria-label={`Role of ${m.user}`} value={m.role} disabled={busy}
                            onChange={(e) => void setRole(m.user, (e.target as HTMLSelectElement).value as Role)}>
                      {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
                    </select>
                  : <span class={`badge member-role-${m.role}`}>{m.role}</span>}</td>
                <td>{m.updated_at}</td>
                {admin && <td>
                  <button type="button" class={confirm.armed === m.user ? "member-danger" : undefined} disabled={busy}
                          aria-label={confirm.armed === m.user ? `Confirm removing ${m.user}` : `Remove ${m.user}`}
                          onClick={() => remove(m.user)}>{removeLabel(confirm, m.user)}</button>
                </td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {admin && (
        <form class="toolbar member-add" onSubmit={add}>
          <h2>Add a member</h2>
          <label>User <input name="user" value={user} required aria-describedby="member-user-help"
                             onInput={(e) => setUser((e.target as HTMLInputElement).value)} /></label>
          <label>Role <select name="role" value={newRole} onChange={(e) => setNewRole((e.target as HTMLSelectElement).value as Role)}>
            {ROLES.map((r) => <option key={r} value={r}>{r}</option>)}
          </select></label>
          <button type="submit" class="primary" disabled={busy || !user.trim()}>Add member</button>
          <p class="help" id="member-user-help">A user name (lowercase letters, digits, - and _). Adding someone already listed changes their role.</p>
          {formError && <p class="error" role="alert">{formError}</p>}
        </form>
      )}
    </section>
  );
}
