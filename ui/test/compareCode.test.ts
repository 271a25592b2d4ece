import { describe, expect, it } from "vitest";
import { diffLines, diffSnapshots, hunks, readTar } from "../src/lib/compareCode";

function tarOf(files: Record<string, string>): Uint8Array {
  const blocks: Uint8Array[] = [];
  const enc = new TextEncoder();
  for (const [name, text] of Object.entries(files)) {
    const body = enc.encode(text);
    const h = new Uint8Array(512);
    h.set(enc.encode(name), 0);
    h.set(enc.encode(body.length.toString(8).padStart(11, "0")), 124);
    h[156] = "0".charCodeAt(0);
    blocks.push(h, new Uint8Array(Math.ceil(body.length / 512) * 512));
    blocks[blocks.length - 1]!.set(body);
  }
  blocks.push(new Uint8Array(1024));
  const out = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
  let at = 0;
  for (const b of blocks) { out.set(b, at); at += b.length; }
  return out;
}

describe("code archives diffed in the browser", () => {
  it("reads a tar's regular files", () => {
    const files = readTar(tarOf({ "train.py": "print(1)\n", "a/b.txt": "x".repeat(700) }));
    expect([...files.keys()]).toEqual(["train.py", "a/b.txt"]);
    expect(new TextDecoder().decode(files.get("train.py"))).toBe("print(1)\n");
    expect(files.get("a/b.txt")!.length).toBe(700);
  });
  it("diffs lines by their longest common subsequence", () => {
    const ops = diffLines(["a", "b", "c", "d"], ["a", "x", "c", "d", "e"]);
    expect(ops.map((o) => o.t + o.line)).toEqual([" a", "-b", "+x", " c", " d", "+e"]);
    expect(diffLines(["a", "b"], ["c"], 1).map((o) => o.t + o.line)).toEqual(["-a", "-b", "+c"]);
  });
  it("writes hunks with difflib's headers and three lines of context", () => {
    const a = Array.from({ length: 20 }, (_, i) => `l${i + 1}`);
    const b = a.slice();
    b[9] = "changed";
    expect(hunks(diffLines(a, b))).toEqual(["@@ -7,7 +7,7 @@", " l7", " l8", " l9", "-l10", "+changed", " l11", " l12", " l13"]);
    expect(hunks(diffLines([], ["new"]))).toEqual(["@@ -0,0 +1 @@", "+new"]);
  });
  it("diffs two snapshots file by file: changed, added, removed, binary", () => {
    const enc = new TextEncoder();
    const a = new Map([["train.py", enc.encode("lr = 0.1\nepochs = 5\n")], ["old.txt", enc.encode("bye\n")],
      ["same.txt", enc.encode("same\n")], ["w.bin", new Uint8Array([0xff, 0xfe])]]);
    const b = new Map([["train.py", enc.encode("lr = 0.01\nepochs = 5\n")], ["new.txt", enc.encode("hi\n")],
      ["same.txt", enc.encode("same\n")], ["w.bin", new Uint8Array([0xff, 0xfd])]]);
    expect(diffSnapshots(a, b)).toBe([
      "--- /dev/null", "+++ b/new.txt", "@@ -0,0 +1 @@", "+hi",
      "--- a/old.txt", "+++ /dev/null", "@@ -1 +0,0 @@", "-bye",
      "--- a/train.py", "+++ b/train.py", "@@ -1,2 +1,2 @@", "-lr = 0.1", "+lr = 0.01", " epochs = 5",
      "Binary files a/w.bin and b/w.bin differ", ""].join("\n"));
    expect(diffSnapshots(a, a)).toBe("");
  });
});
