// Outcomes for node's built-in runner with the junit reporter: passes, failures,
// skips and todos (a failing todo is reported as skipped beside a failure).
import { describe, it, test } from "node:test";
import assert from "node:assert/strict";

test("top level passes", () => {
  assert.equal(1 + 1, 2);
});

test("top level fails", () => {
  assert.equal(1 + 1, 3);
});

describe("cart", () => {
  it("sums prices", () => {
    assert.equal(2 * 3, 6);
  });

  it("applies a discount", () => {
    throw new RangeError("discount out of range");
  });

  it("ships abroad", { skip: "no carrier yet" }, () => {});

  it("supports coupons", { todo: true }, () => {});

  it("failing todo", { todo: "not done" }, () => {
    throw new Error("still broken");
  });

  describe("checkout", () => {
    for (const name of ["naïve", "日本語"]) {
      it(`accepts name ${name}`, () => {
        assert.ok(name.length > 0);
      });
    }
  });
});
