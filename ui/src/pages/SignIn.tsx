// Sign-in: a token is pasted once and sent to the gateway, which answers with a session cookie
// (HttpOnly, so the page never holds the token again).
import { useState } from "preact/hooks";
import { api } from "../client";
import type { Session } from "../lib/types";

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await api.signIn(token.trim());
      setToken("");
      onSignedIn(s);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="card" onSubmit={submit}>
      <h2>Sign in</h2>
      <label for="token">Cairn token</label>
      <input id="token" type="password" autocomplete="off" required value={token}
             onInput={(e) => setToken((e.target as HTMLInputElement).value)} aria-describedby="token-help" />
      <p id="token-help" class="help">Paste a token (<code>cairn token create</code>, or the admin token in the data
        directory). It is sent once; the gateway keeps a session cookie instead.</p>
      {error && <p class="error" role="alert">{error}</p>}
      <button type="submit" class="primary" disabled={busy || !token.trim()}>Sign in</button>
    </form>
  );
}
