import { describe, expect, it } from "vitest";
import { appendChunk, atBottom, EMPTY_LOG, followStream, TRUNCATED_MARK } from "../src/lib/logs";

describe("log follower", () => {
  it("appends chunks as they arrive", () => {
    let s = appendChunk(EMPTY_LOG, "epoch 1\nep");
    s = appendChunk(s, "och 2\n");
    expect(s).toEqual({ text: "epoch 1\nepoch 2\n", dropped: 0 });
    expect(appendChunk(s, "")).toBe(s);
  });

  it("drops the head at a line start past the cap, and marks it", () => {
    let s = appendChunk(EMPTY_LOG, "aaaa\nbbbb\n", 12);
    s = appendChunk(s, "cccc\n", 12);
    expect(s.text).toBe(TRUNCATED_MARK + "bbbb\ncccc\n");
    expect(s.dropped).toBe(5);
    s = appendChunk(s, "dddd\n", 12);
    expect(s.text).toBe(TRUNCATED_MARK + "cccc\ndddd\n");
    expect(s.dropped).toBe(10);
  });

  it("sticks to the bottom only when the reader is there", () => {
    expect(atBottom(900, 100, 1000)).toBe(true);
    expect(atBottom(500, 100, 1000)).toBe(false);
  });

  it("decodes a stream whose chunks split a UTF-8 character", async () => {
    const bytes = new TextEncoder().encode("loss ✓ done\n");
    const cut = 6; // inside the 3-byte check mark
    const body = new ReadableStream<Uint8Array>({
      start(c) { c.enqueue(bytes.slice(0, cut)); c.enqueue(bytes.slice(cut)); c.close(); },
    });
    const got: string[] = [];
    await followStream(body, (s) => got.push(s));
    expect(got.join("")).toBe("loss ✓ done\n");
    expect(got.every((s) => !s.includes("\uFFFD"))).toBe(true);
  });
});
