// Outcomes for mocha + mocha-junit-reporter: passes, failures, pending, a failing hook.
const assert = require("node:assert");

describe("cart", function () {
  it("sums prices", function () {
    assert.strictEqual(2 * 3, 6);
  });

  it("applies a discount", function () {
    assert.strictEqual(10, 9, "discount not applied");
  });

  it("is pending without a body");

  it.skip("ships abroad", function () {});

  describe("checkout", function () {
    for (const name of ["naïve", "日本語"]) {
      it(`accepts name ${name}`, function () {
        assert.ok(name.length > 0);
      });
    }

    it("throws a type error", function () {
      throw new TypeError("gateway is not a function");
    });
  });

  describe("with a broken hook", function () {
    before(function () {
      throw new Error("database unreachable");
    });

    it("never runs one", function () {});
    it("never runs two", function () {});
  });
});
