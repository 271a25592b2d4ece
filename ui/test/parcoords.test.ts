import { describe, expect, it } from "vitest";
import { colourAt, differingKeys, lines, makeAxis, NO_VALUE_COLOUR, pathFor, position, ticks } from "../src/lib/parcoords";

describe("parallel coordinates axes", () => {
  it("scales numeric axes (params stored as strings) from min to max", () => {
    const a = makeAxis("lr", ["0.1", "0.3", 0.2]);
    expect(a).toMatchObject({ kind: "numeric", min: 0.1, max: 0.3 });
    expect(position(a, "0.1")).toBe(0);
    expect(position(a, 0.3)).toBe(1);
    expect(position(a, "0.2")).toBeCloseTo(0.5);
    expect(position(a, null)).toBeNull();
  });
  it("puts categories evenly spaced, sorted (numbers numerically)", () => {
    const a = makeAxis("opt", ["sgd", "adam", "rmsprop", "adam"]);
    expect(a.values).toEqual(["adam", "rmsprop", "sgd"]);
    expect(["adam", "rmsprop", "sgd"].map((v) => position(a, v))).toEqual([0, 0.5, 1]);
    expect(position(a, "nope")).toBeNull();
    expect(ticks(a).map((t) => t.label)).toEqual(["adam", "rmsprop", "sgd"]);
  });
  it("takes a sweep's dimension range and log scale over the rows", () => {
    const a = makeAxis("lr", [0.001], { name: "lr", type: "float", min: 1e-4, max: 0.1, log: true });
    expect(a).toMatchObject({ min: 1e-4, max: 0.1, log: true });
    expect(position(a, 0.01)).toBeCloseTo(2 / 3);
    ticks(a).forEach((t, i) => expect(t.at).toBeCloseTo([0, 0.5, 1][i]!));
    const c = makeAxis("opt", [], { name: "opt", type: "categorical", values: ["sgd", "adam"] });
    expect(c.values).toEqual(["adam", "sgd"]);
  });
  it("centres a one-value axis", () => {
    expect(position(makeAxis("bs", ["32", "32"]), "32")).toBe(0.5);
    expect(position(makeAxis("k", ["x"]), "x")).toBe(0.5);
  });
  it("keeps only the params whose values differ (missing counts as different)", () => {
    const rows = [{ lr: "0.1", bs: "32", seed: "1" }, { lr: "0.2", bs: "32" }];
    expect(differingKeys(rows, ["lr", "bs", "seed"])).toEqual(["lr", "seed"]);
  });
});

describe("parallel coordinates lines", () => {
  it("colours lines by the metric from one end to the other, grey without a value", () => {
    expect(colourAt(0)).toBe("#0b57b5");
    expect(colourAt(1)).toBe("#c2410c");
    expect(colourAt(null)).toBe(NO_VALUE_COLOUR);
    const axes = [makeAxis("lr", ["0.1", "0.2"]), makeAxis("loss", [0.5, 1.5])];
    const ls = lines([{ id: "a", label: "a", values: { lr: "0.1", loss: 1.5 } },
      { id: "b", label: "b", values: { lr: "0.2" } }], axes, "loss");
    expect(ls[0]).toMatchObject({ points: [0, 1], t: 1, colour: "#c2410c" });
    expect(ls[1]).toMatchObject({ points: [1, null], t: null, colour: NO_VALUE_COLOUR });
  });
  it("breaks a path where a value is missing", () => {
    expect(pathFor([1, 0, null, 0.5], [0, 10, 20, 30], 5, 100)).toBe("M0.0,5.0L10.0,105.0M30.0,55.0");
  });
});
