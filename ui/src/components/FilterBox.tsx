// The runs filter: the registry's search syntax, with completion of attribute, param, metric and
// tag names (a combobox: arrows pick, Enter/Tab apply, Escape closes; Enter without a list runs it).
import { useRef, useState } from "preact/hooks";
import { applyCompletion, complete, type Completion, type Vocabulary } from "../lib/completion";

interface Props {
  value: string;
  vocab: Vocabulary;
  onChange: (text: string) => void;
  onSubmit: (text: string) => void;
}

export function FilterBox({ value, vocab, onChange, onSubmit }: Props) {
  const input = useRef<HTMLInputElement>(null);
  const [list, setList] = useState<Completion | null>(null);
  const [active, setActive] = useState(0);
  const open = !!list && list.items.length > 0;

  const refresh = (text: string, caret: number) => {
    const c = complete(text, caret, vocab);
    setList(c.items.length ? c : null);
    setActive(0);
  };

  const choose = (item: string) => {
    if (!list) return;
    const next = applyCompletion(value, list, item);
    onChange(next.text);
    requestAnimationFrame(() => {
      input.current?.setSelectionRange(next.caret, next.caret);
      refresh(next.text, next.caret);
    });
  };

  const onKeyDown = (e: KeyboardEvent) => {
    if (!open || !list) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const n = list.items.length;
      setActive((a) => (a + (e.key === "ArrowDown" ? 1 : n - 1)) % n);
    } else if (e.key === "Enter" || e.key === "Tab") {
      e.preventDefault();
      choose(list.items[active]!);
    } else if (e.key === "Escape") {
      setList(null);
    }
  };

  return (
    <form class="filter" role="search" onSubmit={(e) => { e.preventDefault(); setList(null); onSubmit(value); }}>
      <label for="run-filter">Filter runs</label>
      <div class="combo">
        <input id="run-filter" ref={input} type="text" spellcheck={false} autocomplete="off" value={value}
               placeholder="params.lr = '0.01' and metrics.val_loss < 0.3"
               role="combobox" aria-expanded={open} aria-controls="filter-completions" aria-autocomplete="list"
               aria-activedescendant={open ? `completion-${active}` : undefined} aria-describedby="filter-help"
               onInput={(e) => {
                 const el = e.target as HTMLInputElement;
                 onChange(el.value);
                 refresh(el.value, el.selectionStart ?? el.value.length);
               }}
               onKeyDown={onKeyDown} onBlur={() => setList(null)} />
        {open && list && (
          <ul id="filter-completions" role="listbox" class="completions" aria-label="Completions">
            {list.items.map((item, i) => (
              <li id={`completion-${i}`} key={item} role="option" aria-selected={i === active}
                  onMouseDown={(e) => { e.preventDefault(); choose(item); }}>{item}</li>
            ))}
          </ul>
        )}
      </div>
      <button type="submit">Search</button>
      <p id="filter-help" class="help">
        Conditions joined by <code>and</code>, e.g. <code>status = 'finished'</code>,{" "}
        <code>params.epochs &gt;= 10</code>, <code>tags.team != 'vision'</code>,{" "}
        <code>name LIKE 'bert-%'</code>. Tab or Enter takes a completion.
      </p>
    </form>
  );
}
