import { describe, expect, it } from "vitest";
import { expiryText, parseExpiryDays, tokenState } from "../src/lib/tokens";

const NOW = Date.parse("2026-12-05T12:00:00Z");

describe("token expiry", () => {
  it("words the time left", () => {
    expect(expiryText(null, NOW)).toBe("never");
    expect(expiryText("2026-12-05T11:59:00Z", NOW)).toBe("expired");
    expect(expiryText("2026-12-08T13:00:00Z", NOW)).toBe("in 3 days");
    expect(expiryText("2026-12-05T17:30:00Z", NOW)).toBe("in 5 hours");
    expect(expiryText("2026-12-05T12:00:20Z", NOW)).toBe("in 1 minute");
    expect(expiryText("soon", NOW)).toBe("soon");
  });

  it("says revoked before expired", () => {
    expect(tokenState({ revoked: true, expires_at: "2020-01-01T00:00:00Z" }, NOW)).toBe("revoked");
    expect(tokenState({ revoked: false, expires_at: "2020-01-01T00:00:00Z" }, NOW)).toBe("expired");
    expect(tokenState({ revoked: false, expires_at: null }, NOW)).toBe("active");
  });

  it("checks the expiry field as the API does (0 < days <= 3650, empty: never)", () => {
    expect(parseExpiryDays("")).toEqual({ days: null });
    expect(parseExpiryDays(" 30 ")).toEqual({ days: 30 });
    expect(parseExpiryDays("0")).toHaveProperty("error");
    expect(parseExpiryDays("4000")).toHaveProperty("error");
    expect(parseExpiryDays("ten")).toHaveProperty("error");
  });
});
