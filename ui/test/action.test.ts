import { describe, expect, it } from "vitest";
import { runReported } from "../src/lib/action";

describe("runReported", () => {
  it("reports null and resolves true when the write succeeds", async () => {
    const seen: (string | null)[] = [];
    expect(await runReported(async () => 1, (m) => seen.push(m))).toBe(true);
    expect(seen).toEqual([null]);
  });

  it("reports the error's message and resolves false, never throwing", async () => {
    const seen: (string | null)[] = [];
    const ok = await runReported(async () => { throw new Error("version 9 does not exist"); }, (m) => seen.push(m));
    expect(ok).toBe(false);
    expect(seen).toEqual(["version 9 does not exist"]);
  });
});
