// Following a job's log: `GET .../jobs/<id>/logs?follow=true` answers a text stream that grows
// until the attempt ends. Chunks arrive as bytes cut anywhere (even inside a UTF-8 character), so
// a streaming decoder joins them; the page keeps at most MAX_LOG_CHARS (the head is dropped,
// marked), and sticks to the bottom unless the reader scrolled up.

export const MAX_LOG_CHARS = 2_000_000;
export const TRUNCATED_MARK = "[… earlier output dropped: the page keeps the last 2 MB …]\n";

export interface LogState {
  text: string;
  /** Characters dropped from the head to stay under the cap. */
  dropped: number;
}

export const EMPTY_LOG: LogState = { text: "", dropped: 0 };

/** The log after one decoded chunk: appended, and cut at a line start from the head when over
 * `max` characters. */
export function appendChunk(state: LogState, chunk: string, max = MAX_LOG_CHARS): LogState {
  if (!chunk) return state;
  const body = (state.dropped ? state.text.slice(TRUNCATED_MARK.length) : state.text) + chunk;
  if (body.length <= max) return { text: state.dropped ? TRUNCATED_MARK + body : body, dropped: state.dropped };
  let cut = body.length - max;
  const nl = body.indexOf("\n", cut);
  if (nl >= 0 && nl < body.length - 1) cut = nl + 1;
  return { text: TRUNCATED_MARK + body.slice(cut), dropped: state.dropped + cut };
}

/** Is the reader at the bottom (within `slack` px)? Then new output scrolls into view. */
export function atBottom(scrollTop: number, clientHeight: number, scrollHeight: number, slack = 24): boolean {
  return scrollTop + clientHeight >= scrollHeight - slack;
}

/** Read a streaming response body, handing each decoded chunk over as it arrives. Resolves when
 * the stream ends (the attempt ended) or `signal` aborts. */
export async function followStream(body: ReadableStream<Uint8Array>, onText: (s: string) => void,
                                   signal?: AbortSignal): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const stop = () => void reader.cancel().catch(() => undefined);
  signal?.addEventListener("abort", stop);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const s = decoder.decode(value, { stream: true });
      if (s) onText(s);
    }
    const tail = decoder.decode();
    if (tail) onText(tail);
  } finally {
    signal?.removeEventListener("abort", stop);
  }
}

export function logsUrl(project: string, jobId: string, follow: boolean): string {
  const e = encodeURIComponent;
  return `/api/v1/scheduler/projects/${e(project)}/jobs/${e(jobId)}/logs${follow ? "?follow=true" : ""}`;
}
