// Placeholder while the page is built in this round (issue 22): replaced by its owner.
import type { Navigate } from "../client";
import type { Session } from "../lib/types";

export function Webhooks(_props: { project?: string; name?: string; sweepId?: string; session: Session; navigate: Navigate }) {
  return <p>This page is not built yet.</p>;
}
