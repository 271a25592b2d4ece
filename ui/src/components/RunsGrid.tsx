// The runs table: every loaded run, but only the rows in view are in the DOM (10,000 runs scroll
// smoothly). A grid for assistive technology; arrow keys move the active row, Enter opens it.
import { useEffect, useRef, useState } from "preact/hooks";
import { cellValue, columnId, columnLabel, type Column, type Sort } from "../lib/columns";
import type { Run, RunMetrics } from "../lib/types";
import { revealRow, visibleWindow } from "../lib/virtual";

export const ROW_HEIGHT = 32;
const VIEWPORT = 560;
const HEADER_HEIGHT = 36;

interface Props {
  runs: Run[];
  metrics: RunMetrics;
  columns: Column[];
  sort: Sort | null;
  onSort: (c: Column) => void;
  onOpen: (r: Run) => void;
  runHref: (r: Run) => string;
  /** Row selection (for Compare): the selected run ids and the toggle; Space toggles the active row. */
  selected?: Set<string>;
  onToggle?: (r: Run) => void;
}

function show(v: string | number | null): string {
  if (v === null) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6);
  return v;
}

export function RunsGrid({ runs, metrics, columns, sort, onSort, onOpen, runHref, selected, onToggle }: Props) {
  // The grid itself scrolls (one focusable, keyboard-scrollable region) under a sticky header.
  const scroller = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [active, setActive] = useState(0);
  const rowsViewport = VIEWPORT - HEADER_HEIGHT;
  const w = visibleWindow(scrollTop, rowsViewport, ROW_HEIGHT, runs.length);
  const picking = !!(selected && onToggle);
  const template = { gridTemplateColumns: (picking ? "2.5rem " : "") + columns.map(() => "minmax(9rem, 1fr)").join(" ") };

  useEffect(() => {
    if (active >= runs.length) setActive(Math.max(0, runs.length - 1));
  }, [runs.length]);

  const move = (to: number) => {
    const i = Math.max(0, Math.min(runs.length - 1, to));
    setActive(i);
    const el = scroller.current;
    if (el) el.scrollTop = revealRow(i, el.scrollTop, el.clientHeight - HEADER_HEIGHT, ROW_HEIGHT);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if ((e.target as HTMLElement).tagName === "BUTTON") return; // a header's own Enter/Space sorts
    const page = Math.floor(rowsViewport / ROW_HEIGHT);
    const moves: Record<string, number> = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
    if (e.key in moves) move(active + moves[e.key]!);
    else if (e.key === "Home") move(0);
    else if (e.key === "End") move(runs.length - 1);
    else if (e.key === "Enter" && runs[active]) onOpen(runs[active]!);
    else if (e.key === " " && picking && runs[active]) onToggle!(runs[active]!);
    else return;
    e.preventDefault();
  };

  return (
    <div class="grid" role="grid" ref={scroller} tabIndex={0} aria-label="Runs (arrow keys move, Enter opens)"
         aria-rowcount={runs.length + 1} aria-colcount={columns.length + (picking ? 1 : 0)}
         aria-activedescendant={runs[active] ? `run-row-${active}` : undefined}
         style={{ height: `${Math.min(VIEWPORT, HEADER_HEIGHT + Math.max(w.total, ROW_HEIGHT)) + 2}px` }}
         onKeyDown={onKeyDown} onScroll={(e) => setScrollTop((e.target as HTMLDivElement).scrollTop)}>
      <div role="rowgroup" class="head">
        <div class="row" role="row" aria-rowindex={1} style={{ ...template, height: `${HEADER_HEIGHT}px` }}>
          {picking && <div role="columnheader" class="pick"><span class="visually-hidden">Select</span></div>}
          {columns.map((c) => {
            const sorted = sort && columnId(sort.column) === columnId(c) ? sort.dir : null;
            return (
              <div role="columnheader" key={columnId(c)}
                   aria-sort={sorted === "asc" ? "ascending" : sorted === "desc" ? "descending" : "none"}>
                <button type="button" class="sort" onClick={() => onSort(c)}>
                  {columnLabel(c)} <span aria-hidden="true">{sorted === "asc" ? "▲" : sorted === "desc" ? "▼" : ""}</span>
                </button>
              </div>
            );
          })}
        </div>
      </div>
      <div role="rowgroup" style={{ height: `${w.total}px`, position: "relative" }}>
        <div style={{ transform: `translateY(${w.offset}px)` }}>
          {runs.slice(w.start, w.end).map((r, j) => {
            const i = w.start + j;
            return (
              <div role="row" id={`run-row-${i}`} key={r.id} aria-rowindex={i + 2} aria-selected={i === active}
                   class={i === active ? "row active" : "row"} style={{ ...template, height: `${ROW_HEIGHT}px` }}
                   onClick={() => setActive(i)} onDblClick={() => onOpen(r)}>
                {picking && (
                  <div role="gridcell" class="cell pick">
                    <input type="checkbox" tabIndex={-1} checked={selected!.has(r.id)} aria-label={`Select ${r.name || r.id} to compare`}
                           onChange={() => onToggle!(r)} onClick={(e) => e.stopPropagation()} />
                  </div>
                )}
                {columns.map((c, k) => (
                  <div role="gridcell" key={columnId(c)} class={`cell status-${c.key === "status" ? r.status : ""}`}>
                    {k === 0
                      ? <a href={runHref(r)} tabIndex={-1} onClick={(e) => { e.preventDefault(); onOpen(r); }}>
                          {show(cellValue(r, c, metrics)) || r.id}{r.archived ? <span class="badge"> archived</span> : null}</a>
                      : show(cellValue(r, c, metrics))}
                  </div>
                ))}
              </div>
            );
          })}
        </div>
      </div>
    </div>
  );
}
