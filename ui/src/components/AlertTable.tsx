// A deployment's alerts (firing first, then resolved) and its rules, as tables.
import { describeCondition, formatNumber, groupAlerts, windowTime, type Alert } from "../lib/monitor";

export interface Rule {
  id: string; name: string; metric: string; column: string | null; comparison: string; threshold: number;
  window: string; persistence: { k: number; n: number }; cooldown_s: number; firing: boolean;
  action: Record<string, unknown> | null;
}

export function AlertTable({ alerts }: { alerts: Alert[] }) {
  const { firing, resolved } = groupAlerts(alerts);
  if (alerts.length === 0) return <p>No alerts.</p>;
  return (
    <table class="list alert-table">
      <caption>{firing.length} firing, {resolved.length} resolved</caption>
      <thead><tr><th scope="col">State</th><th scope="col">Rule</th><th scope="col">Condition</th><th scope="col">Value</th>
        <th scope="col">Window</th><th scope="col">Fired</th><th scope="col">Resolved</th></tr></thead>
      <tbody>
        {[...firing, ...resolved].map((a) => (
          <tr key={a.fired_seq} class={a.state === "open" ? "alert-firing" : "alert-resolved"}>
            <td><span class={`badge alert-state-${a.state === "open" ? "firing" : "resolved"}`}>{a.state === "open" ? "firing" : "resolved"}</span></td>
            <th scope="row">{a.name}</th>
            <td><code>{describeCondition(a)}</code></td>
            <td>{formatNumber(a.value)}</td>
            <td>{a.window.size} from {windowTime(a.window.start)}</td>
            <td>{a.fired_at}</td>
            <td>{a.resolved_at ?? "not yet"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function AlertRules({ rules }: { rules: Rule[] }) {
  if (rules.length === 0) return <p>No alert rules.</p>;
  return (
    <table class="list alert-rules">
      <thead><tr><th scope="col">Rule</th><th scope="col">Condition</th><th scope="col">Window</th>
        <th scope="col">Persistence</th><th scope="col">Cooldown</th><th scope="col">Action</th><th scope="col">Now</th></tr></thead>
      <tbody>
        {rules.map((r) => (
          <tr key={r.id}>
            <th scope="row">{r.name}</th>
            <td><code>{describeCondition(r)}</code></td>
            <td>{r.window}</td>
            <td>{r.persistence.k} of {r.persistence.n} windows</td>
            <td>{r.cooldown_s} s</td>
            <td>{r.action ? Object.keys(r.action).join(", ") : "none"}</td>
            <td>{r.firing ? <span class="badge alert-state-firing">firing</span> : "quiet"}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
