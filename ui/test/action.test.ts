import { describe, expect, it } from "vitest";
import { reloadUntil, runReported } from "../src/lib/action";

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

describe("reloadUntil", () => {
  it("reads again until the read shows the event, then stops", async () => {
    const reads = [["v1"], ["v1"], ["v1", "v2"], ["v1", "v2", "v3"]];
    let n = 0;
    const got = await reloadUntil(async () => reads[n++]!, (vs) => vs.includes("v2"), 10, 1);
    expect(got).toEqual(["v1", "v2"]);
    expect(n).toBe(3);
  });

  it("gives up after its tries with the last read", async () => {
    let n = 0;
    const got = await reloadUntil(async () => ++n, () => false, 4, 1);
    expect(got).toBe(4);
  });
});
