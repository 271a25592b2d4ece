// Virtual scrolling: a table of 10,000 runs renders only the rows in view (plus a few above and
// below, so a fast scroll shows no gap) inside a spacer of the full height.

export interface Window {
  /** First row rendered (inclusive) and the row after the last (exclusive). */
  start: number;
  end: number;
  /** Where the first rendered row sits, in pixels from the top of the spacer. */
  offset: number;
  /** The spacer's height: every row's. */
  total: number;
}

export function visibleWindow(scrollTop: number, viewport: number, rowHeight: number, rows: number,
                              overscan = 6): Window {
  const total = rows * rowHeight;
  if (rows <= 0 || rowHeight <= 0) return { start: 0, end: 0, offset: 0, total: 0 };
  const top = Math.min(Math.max(0, scrollTop), Math.max(0, total - viewport));
  const first = Math.floor(top / rowHeight);
  const last = Math.ceil((top + Math.max(0, viewport)) / rowHeight);
  const start = Math.max(0, first - overscan);
  const end = Math.min(rows, last + overscan);
  return { start, end, offset: start * rowHeight, total };
}

/** The scrollTop that shows row `index` whole, moving as little as possible (keyboard focus). */
export function revealRow(index: number, scrollTop: number, viewport: number, rowHeight: number): number {
  const top = index * rowHeight;
  const bottom = top + rowHeight;
  if (top < scrollTop) return top;
  if (bottom > scrollTop + viewport) return Math.max(0, bottom - viewport);
  return scrollTop;
}
