import { describe, expect, it } from "vitest";
import { auditPageQuery, auditPageSize, auditUrl, dataSummary, EMPTY_FILTER, newestFirst, parseAuditQuery, type AuditEvent } from "../src/lib/audit";

const ev = (sequence: number): AuditEvent => ({ id: `e${sequence}`, type: "member.added", project: "p", aggregate: "membership",
  aggregate_id: "p", sequence, time: "", actor: "admin:t", correlation_id: "r", data: {} });

describe("audit filters", () => {
  it("asks for the newest first, with only the filters set, the older-page cursor and a limit", () => {
    expect(auditUrl(EMPTY_FILTER)).toBe("/api/v1/audit?order=desc&limit=100");
    expect(auditUrl({ project: "atlas", actor: " ana ", type: "member.*,token.*", since: "" }, 42, 50))
      .toBe("/api/v1/audit?project=atlas&actor=ana&type=member.*%2Ctoken.*&order=desc&before=42&limit=50");
  });

  it("round-trips through the page URL's query", () => {
    const f = { project: "atlas", actor: "", type: "member.*", since: "2026-12-01T08:00:00Z" };
    expect(auditPageQuery(f)).toBe("?project=atlas&type=member.*&since=2026-12-01T08%3A00%3A00Z");
    expect(parseAuditQuery(auditPageQuery(f))).toEqual(f);
    expect(auditPageQuery(EMPTY_FILTER)).toBe("");
    expect(parseAuditQuery("?nosuch=1&actor=%20bo%20")).toEqual({ ...EMPTY_FILTER, actor: "bo" });
  });

  it("takes a page size from the page URL, 1 to 1000", () => {
    expect(auditPageSize("?limit=3&project=p")).toBe(3);
    for (const bad of ["", "?limit=0", "?limit=1001", "?limit=2.5", "?limit=x"]) expect(auditPageSize(bad)).toBe(100);
  });

  it("shows loaded pages newest first, each event once", () => {
    const merged = newestFirst([ev(1), ev(2)], [ev(2), ev(3)]);
    expect(merged.map((e) => e.sequence)).toEqual([3, 2, 1]);
    const older = newestFirst([ev(9), ev(8)], [ev(7), ev(6)]);
    expect(older.map((e) => e.sequence)).toEqual([9, 8, 7, 6]);
  });
});

describe("the details column", () => {
  it("shows the first scalar fields only", () => {
    expect(dataSummary({ user: "olga", role: "admin", types: ["a"], n: 3, more: "x" })).toBe("user=olga role=admin n=3");
    expect(dataSummary({})).toBe("");
  });
});
