// One way for a page to follow the event stream (SSE): the hook opens an EventSource with the
// session cookie for the given event types, hands each parsed event to the latest `onEvent`, and
// reports the stream's state, which <LiveState> shows.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../client";
import { parseEvent } from "../lib/live";
import type { StreamEvent } from "../lib/types";

export type Live = "connecting" | "live" | "off";

/** Follow `url` for `types`; `onEvent` gets each event (the newest callback is used, so it may
 * close over current state). Another `url` (e.g. another project) reconnects. */
export function useEventStream(url: string, types: readonly string[], onEvent: (e: StreamEvent) => void): Live {
  const [live, setLive] = useState<Live>("connecting");
  const handler = useRef(onEvent);
  handler.current = onEvent;
  useEffect(() => {
    if (api.devBearer) { setLive("off"); return; } // EventSource cannot send a bearer header (dev mode only)
    const es = new EventSource(url, { withCredentials: true });
    const on = (m: MessageEvent) => {
      const e = parseEvent(String(m.data));
      if (e) handler.current(e);
    };
    for (const t of types) es.addEventListener(t, on as EventListener);
    es.onopen = () => setLive("live");
    es.onerror = () => setLive(es.readyState === EventSource.CLOSED ? "off" : "connecting");
    return () => es.close();
  }, [url, types.join(",")]);
  return live;
}

export function LiveState({ live }: { live: Live }) {
  return <span class={`live-state state-${live}`}>{live === "live" ? "live" : live === "connecting" ? "connecting…" : "not live"}</span>;
}
