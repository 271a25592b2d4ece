import { describe, expect, it } from "vitest";
import { attemptResult, deliveriesUrl, outcomeClass, parseTypes, type DeliveryAttempt } from "../src/lib/webhooks";

const attempt = (over: Partial<DeliveryAttempt>): DeliveryAttempt => ({ id: 1, sequence: 7, event_type: "run.created", attempt: 1,
  time: "2026-12-05T12:00:00.000Z", status: 204, error: "", duration_ms: 3.2, outcome: "delivered", next_retry_at: null, ...over });

describe("webhook delivery attempts", () => {
  it("say the receiver's answer, the error, and when a retry is due", () => {
    expect(attemptResult(attempt({}))).toBe("HTTP 204 delivered");
    expect(attemptResult(attempt({ status: 500, error: "HTTP 500", outcome: "retrying", next_retry_at: "2026-12-05T12:00:01.000Z" })))
      .toBe("HTTP 500, retry at 2026-12-05T12:00:01.000Z");
    expect(attemptResult(attempt({ status: null, error: "ClientConnectorError: refused", outcome: "dead_lettered" })))
      .toBe("ClientConnectorError: refused, dead-lettered");
    expect(attemptResult(attempt({ status: null, error: "", outcome: "retrying" }))).toBe("no answer");
  });

  it("colour each outcome", () => {
    expect(outcomeClass("delivered")).toBe("badge webhook-ok");
    expect(outcomeClass("retrying")).toBe("badge webhook-warn");
    expect(outcomeClass("dead_lettered")).toBe("badge webhook-bad");
  });

  it("page back with before", () => {
    expect(deliveriesUrl("/api/v1/projects/p/webhooks/h")).toBe("/api/v1/projects/p/webhooks/h/deliveries?limit=5");
    expect(deliveriesUrl("/api/v1/projects/p/webhooks/h", 10, 42)).toBe("/api/v1/projects/p/webhooks/h/deliveries?limit=10&before=42");
  });

  it("read event types from a comma- or space-separated list, each once", () => {
    expect(parseTypes("run.*, model_version.*  run.*")).toEqual(["run.*", "model_version.*"]);
  });
});
