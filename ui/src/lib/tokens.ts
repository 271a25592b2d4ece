// How the tokens page shows a token's lifetime. Pure functions of the record and a clock, so the
// wording is tested without a browser.

export interface TokenRecord {
  token_id: string;
  user: string;
  kind: string;
  site_admin: boolean;
  expires_at: string | null;
  description: string;
  revoked: boolean;
  created_at: string;
  created_by?: string;
}

const DAY = 86_400_000;
const HOUR = 3_600_000;

/** "never", "expired", "in 3 days", "in 5 hours", "in 12 minutes". */
export function expiryText(expiresAt: string | null, now: number): string {
  if (!expiresAt) return "never";
  const t = Date.parse(expiresAt);
  if (Number.isNaN(t)) return expiresAt;
  const left = t - now;
  if (left <= 0) return "expired";
  if (left >= 2 * DAY) return `in ${Math.floor(left / DAY)} days`;
  if (left >= 2 * HOUR) return `in ${Math.floor(left / HOUR)} hours`;
  const m = Math.max(1, Math.floor(left / 60_000));
  return `in ${m} minute${m === 1 ? "" : "s"}`;
}

/** The state word of a token: revoked wins over expired. */
export function tokenState(t: Pick<TokenRecord, "revoked" | "expires_at">, now: number): "revoked" | "expired" | "active" {
  if (t.revoked) return "revoked";
  if (t.expires_at && Date.parse(t.expires_at) <= now) return "expired";
  return "active";
}

/** The create form's expiry field: "" (never) or a positive number of days up to 3650, else an error. */
export function parseExpiryDays(text: string): { days: number | null } | { error: string } {
  const s = text.trim();
  if (!s) return { days: null };
  const n = Number(s);
  if (!Number.isFinite(n) || n <= 0 || n > 3650) return { error: "expiry: a number of days above 0 and at most 3650, or empty for never" };
  return { days: n };
}
