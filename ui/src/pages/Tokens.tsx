// The caller's tokens (a site admin sees everyone's, as the API gives them): create one (the
// secret shown once, in a box with a copy button, kept only in this component's state and gone
// on dismiss or reload), revoke one after a confirm step. Secrets are never listed by the API.
import { useEffect, useState } from "preact/hooks";
import { api, type Navigate } from "../client";
import { useAction } from "../lib/action";
import { seg } from "../lib/api";
import { clickRemove, IDLE, type Confirm } from "../lib/members";
import { expiryText, parseExpiryDays, tokenState, type TokenRecord } from "../lib/tokens";
import type { Session } from "../lib/types";
import "./members.css";

export function Tokens({ session }: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  const [tokens, setTokens] = useState<TokenRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [formError, setFormError] = useState<string | null>(null);
  const [description, setDescription] = useState("");
  const [days, setDays] = useState("");
  const [secret, setSecret] = useState<{ id: string; token: string } | null>(null);
  const [copied, setCopied] = useState(false);
  const [confirm, setConfirm] = useState<Confirm>(IDLE);
  const [busy, run] = useAction();
  const now = Date.now();

  const load = () => api.get<{ tokens: TokenRecord[] }>("/api/v1/tokens").then(
    (b) => setTokens([...b.tokens].reverse()), (e: Error) => setError(e.message));
  useEffect(() => { void load(); }, []);

  const create = async (e: Event) => {
    e.preventDefault();
    const expiry = parseExpiryDays(days);
    if ("error" in expiry) { setFormError(expiry.error); return; }
    await run(async () => {
      const made = await api.post<TokenRecord & { token: string }>("/api/v1/tokens", {
        description: description.trim(), ...(expiry.days !== null ? { expires_in_days: expiry.days } : {}) });
      setSecret({ id: made.token_id, token: made.token });
      setCopied(false);
      setDescription("");
      setDays("");
      await load();
    }, setFormError);
  };

  const revoke = async (id: string) => {
    const next = clickRemove(confirm, id);
    setConfirm(next.state);
    if (!next.go) return;
    await run(async () => {
      await api.request("DELETE", `/api/v1/tokens/${seg(id)}`);
      await load();
    }, setError);
  };

  const copy = async () => {
    if (!secret) return;
    try {
      await navigator.clipboard.writeText(secret.token);
      setCopied(true);
    } catch {
      setError("the browser refused the clipboard: select the token and copy it by hand");
    }
  };

  return (
    <section>
      <h1>Tokens <span class="role">{session.site_admin ? "every user's (site admin)" : `of ${session.user}`}</span></h1>
      {secret && (
        <div class="token-secret" role="alert" aria-labelledby="token-secret-title">
          <p id="token-secret-title"><strong>Your new token {secret.id}.</strong> Copy it now: it will not be shown again.</p>
          <p><code id="token-secret-value">{secret.token}</code></p>
          <button type="button" onClick={copy}>{copied ? "Copied" : "Copy token"}</button>{" "}
          <button type="button" onClick={() => setSecret(null)}>Dismiss</button>
        </div>
      )}
      {error && <p class="error" role="alert">{error}</p>}
      <form class="toolbar member-add" onSubmit={create}>
        <h2>Create a token</h2>
        <label>Description <input name="description" value={description} maxLength={500}
                                  onInput={(e) => setDescription((e.target as HTMLInputElement).value)} /></label>
        <label>Expires in (days, empty: never) <input name="expires" inputMode="decimal" value={days}
                                  onInput={(e) => setDays((e.target as HTMLInputElement).value)} /></label>
        <button type="submit" class="primary" disabled={busy}>Create token</button>
        <p class="help">A token never outlives the one you signed in with; it acts as you, with your roles.</p>
        {formError && <p class="error" role="alert">{formError}</p>}
      </form>
      {!tokens && !error && <p role="status">Loading…</p>}
      {tokens && (
        <table class="list token-table">
          <caption class="help">{tokens.length} tokens, newest first</caption>
          <thead><tr><th scope="col">Token</th>{session.site_admin && <th scope="col">User</th>}<th scope="col">Kind</th>
            <th scope="col">Description</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">State</th>
            <th scope="col">Revoke</th></tr></thead>
          <tbody>
            {tokens.map((t) => {
              const state = tokenState(t, now);
              return (
                <tr key={t.token_id} id={`token-${t.token_id}`}>
                  <th scope="row"><code>{t.token_id}</code></th>
                  {session.site_admin && <td>{t.user}</td>}
                  <td>{t.kind}{t.site_admin ? " (site admin)" : ""}</td>
                  <td>{t.description}</td>
                  <td>{t.created_at}</td>
                  <td title={t.expires_at ?? undefined}>{expiryText(t.expires_at, now)}</td>
                  <td><span class={`badge token-${state}`}>{state}</span></td>
                  <td>{state === "active" && (
                    <button type="button" class={confirm.armed === t.token_id ? "member-danger" : undefined} disabled={busy}
                            aria-label={confirm.armed === t.token_id ? `Confirm revoking ${t.token_id}` : `Revoke ${t.token_id}`}
                            onClick={() => void revoke(t.token_id)}>
                      {confirm.armed === t.token_id ? "Confirm revoke" : "Revoke"}</button>)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
