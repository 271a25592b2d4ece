// Placeholder while the code and artifact browsers are built this round (issue 22): replaced by
// its owner.
export function RunFiles(_props: { project: string; runId: string }) {
  return null;
}
