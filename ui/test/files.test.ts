import { describe, expect, it } from "vitest";
import { artifactEntries, baseName, buildTree, formatSize, initiallyOpen, tableUrl, visibleRows } from "../src/lib/files";
import {
  cairnModelSignature, decodeText, lines, parseMLmodelSignature, parseSignature, prettyJson, previewKind, tableFormat,
} from "../src/lib/preview";

describe("formatSize", () => {
  it("uses binary units with one decimal below 10", () => {
    expect(formatSize(0)).toBe("0 B");
    expect(formatSize(1023)).toBe("1023 B");
    expect(formatSize(1536)).toBe("1.5 KiB");
    expect(formatSize(200 * 1024)).toBe("200 KiB");
    expect(formatSize(5 * 1024 ** 3)).toBe("5.0 GiB");
    expect(formatSize(-1)).toBe("?");
  });
});

describe("buildTree", () => {
  const tree = buildTree([
    { path: "train.py", size: 10 },
    { path: "src/b.py", size: 5 },
    { path: "src/a.py", size: 7 },
    { path: "src/util/x.py", size: 1, digest: "d1" },
    { path: "a.txt", size: 2 },
    { path: "/odd//path.txt", size: 3 },
  ]);

  it("puts folders first, sorts by name, and sums sizes and file counts", () => {
    expect(tree.map((n) => n.name)).toEqual(["odd", "src", "a.txt", "train.py"]);
    const src = tree[1]!;
    expect(src.children!.map((n) => n.name)).toEqual(["util", "a.py", "b.py"]);
    expect(src.size).toBe(13);
    expect(src.files).toBe(3);
    expect(src.children![0]!.children![0]).toMatchObject({ path: "src/util/x.py", digest: "d1", children: null });
    expect(tree[0]!.children![0]!.path).toBe("odd/path.txt");
  });

  it("shows the children of open folders only", () => {
    expect(visibleRows(tree, new Set()).map((r) => r.node.path)).toEqual(["odd", "src", "a.txt", "train.py"]);
    const rows = visibleRows(tree, new Set(["src", "src/util"]));
    expect(rows.map((r) => [r.node.path, r.depth])).toEqual([
      ["odd", 0], ["src", 0], ["src/util", 1], ["src/util/x.py", 2], ["src/a.py", 1], ["src/b.py", 1],
      ["a.txt", 0], ["train.py", 0]]);
    expect(rows[1]!.open).toBe(true);
  });

  it("opens a single top folder chain at first", () => {
    const single = buildTree([{ path: "model/inner/a.bin", size: 1 }, { path: "model/inner/b.bin", size: 1 }]);
    expect([...initiallyOpen(single)]).toEqual(["model", "model/inner"]);
    expect([...initiallyOpen(tree)]).toEqual([]);
  });
});

describe("artifactEntries", () => {
  it("puts files under their names and a directory's manifest files under its name", () => {
    const entries = artifactEntries([
      { name: "notes.txt", digest: "n", kind: "file", size: 4, files: 1 },
      { name: "model-x", digest: "m", kind: "directory", size: 9, files: 2 },
      { name: "pending", digest: "p", kind: "model", size: 1, files: 1 },
    ], { m: [{ path: "MLmodel", kind: "file", size: 5, digest: "m1" }, { path: "w/a.bin", kind: "file", size: 4, digest: "m2" },
      { path: "link", kind: "symlink", size: 0, digest: "" }] });
    expect(entries).toEqual([
      { path: "notes.txt", size: 4, digest: "n" },
      { path: "model-x/MLmodel", size: 5, digest: "m1" },
      { path: "model-x/w/a.bin", size: 4, digest: "m2" },
      { path: "pending", size: 1, digest: undefined },
    ]);
  });
});

describe("previewKind", () => {
  it("chooses by name", () => {
    expect(previewKind("notes.txt")).toBe("text");
    expect(previewKind("dir/train.PY")).toBe("text");
    expect(previewKind("README")).toBe("text");
    expect(previewKind("config.json")).toBe("json");
    expect(previewKind("events.jsonl")).toBe("text");
    expect(previewKind("plot.png")).toBe("image");
    expect(previewKind("a/b/logo.svg")).toBe("image");
    expect(previewKind("data.csv")).toBe("table");
    expect(previewKind("data.parquet")).toBe("table");
    expect(previewKind("model-x/MLmodel")).toBe("signature");
    expect(previewKind("pkg/cairn-model.json")).toBe("signature");
    expect(previewKind("weights.bin")).toBe("none");
    expect(previewKind("noext")).toBe("none");
    expect(tableFormat("x.feather")).toBe("arrow");
    expect(tableFormat("x.txt")).toBeNull();
    expect(baseName("a/b/c.txt")).toBe("c.txt");
    expect(tableUrl("ab", "csv", 5)).toBe("/api/v1/artifacts/blobs/ab/table?format=csv&rows=5");
  });
});

describe("text", () => {
  const enc = new TextEncoder();
  it("cuts at the limit, drops a character split by the cut, and spots binary", () => {
    const bytes = enc.encode("abcé");
    expect(decodeText(bytes, bytes.length)).toEqual({ text: "abcé", truncated: false, binary: false });
    expect(decodeText(bytes, 100, 4)).toEqual({ text: "abc", truncated: true, binary: false });
    expect(decodeText(new Uint8Array([65, 0, 66]), 3).binary).toBe(true);
  });
  it("splits lines without a trailing empty one", () => {
    expect(lines("a\nb\n")).toEqual(["a", "b"]);
    expect(lines("a\r\nb")).toEqual(["a", "b"]);
    expect(lines("")).toEqual([""]);
  });
  it("pretty-prints JSON or says why not", () => {
    expect(prettyJson('{"a":[1,2]}')).toEqual({ ok: true, text: '{\n  "a": [\n    1,\n    2\n  ]\n}' });
    expect(prettyJson("{nope").ok).toBe(false);
  });
});

describe("signatures", () => {
  const mlmodel = [
    "artifact_path: model",
    "flavors:",
    "  python_function:",
    "    loader_module: mlflow.sklearn",
    "signature:",
    `  inputs: '[{"type": "double", "name": "age", "required": true}, {"type": "string", "name": "city's",`,
    `    "required": false}]'`,
    `  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]'`,
    "  params: null",
    "utc_time_created: '2024-01-01'",
  ].join("\n");

  it("reads an MLmodel's signature, folded lines and quotes included", () => {
    expect(parseMLmodelSignature(mlmodel)).toEqual({
      inputs: [{ name: "age", type: "double" }, { name: "city's", type: "string", optional: true }],
      outputs: [{ name: "#0", type: "tensor(float64)", shape: "[-1]" }],
      params: [],
    });
    expect(parseMLmodelSignature("flavors:\n  x: 1\n")).toBeNull();
    expect(parseMLmodelSignature("signature:\n  inputs: '[broken'\n")).toBeNull();
  });

  it("reads Cairn's model descriptor", () => {
    const text = JSON.stringify({ format: 1, signature: { inputs: [{ name: "x", type: "float" }] } });
    expect(cairnModelSignature(text)).toEqual({ inputs: [{ name: "x", type: "float" }], outputs: [], params: [] });
    expect(cairnModelSignature("{}")).toBeNull();
    expect(parseSignature("m/MLmodel", mlmodel)!.inputs).toHaveLength(2);
  });
});
