import { describe, expect, it } from "vitest";
import { byStep, displayOf, type MediaEntry, mediaUrl, splitTable, tableFormatOf } from "../src/lib/media";

const entry = (step: number, created_at: string, digest = "d"): MediaEntry => ({
  entry: `k@${step}`, key: "k", step, kind: "image", digest, thumbnail_digest: null, thumbnail_type: null,
  media_type: "image/png", size: 1, width: 1, height: 1, source: "sdk", name: null, created_at,
});

describe("byStep", () => {
  it("orders steps and shows the entry logged last at a step", () => {
    const shown = byStep([entry(5, "t2"), entry(0, "t1"), entry(5, "t3", "newer"), entry(5, "t1", "older")]);
    expect(shown.map((e) => e.step)).toEqual([0, 5]);
    expect(shown[1]!.digest).toBe("newer");
  });
});

describe("displayOf", () => {
  it("never shows html other than in a frame, and a figure's html only as a download or its thumbnail", () => {
    expect(displayOf({ kind: "html", media_type: "text/html", thumbnail_digest: null })).toBe("frame");
    expect(displayOf({ kind: "figure", media_type: "text/html", thumbnail_digest: null })).toBe("download");
    expect(displayOf({ kind: "figure", media_type: "text/html", thumbnail_digest: "t" })).toBe("image");
    expect(displayOf({ kind: "figure", media_type: "image/png", thumbnail_digest: null })).toBe("image");
    expect(displayOf({ kind: "table", media_type: "application/json", thumbnail_digest: null })).toBe("table");
    expect(displayOf({ kind: "text", media_type: "text/plain", thumbnail_digest: null })).toBe("text");
  });
});

describe("tables", () => {
  it("reads parquet through the preview route and MLflow's split JSON here", () => {
    expect(tableFormatOf("application/vnd.apache.parquet")).toBe("parquet");
    expect(tableFormatOf("application/json")).toBeNull();
    expect(splitTable('{"columns": ["a", "b"], "data": [[1, "x"]]}')).toEqual({ columns: ["a", "b"], rows: [[1, "x"]] });
    expect(splitTable('{"lr": 1}')).toBeNull();
    expect(splitTable("not json")).toBeNull();
  });
});

describe("mediaUrl", () => {
  it("escapes the project, run and key", () => {
    expect(mediaUrl("p", "r", "val/recon x")).toBe("/api/v1/artifacts/projects/p/runs/r/media?key=val%2Frecon+x&limit=1000");
  });
});
