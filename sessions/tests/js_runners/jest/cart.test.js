// Outcomes for jest + jest-junit: passes, failures, skips and todos, nested describes.
const total = (items) => items.reduce((sum, item) => sum + item.price * item.qty, 0);

describe("cart", () => {
  test("sums prices", () => {
    expect(total([{ price: 2, qty: 3 }])).toBe(6);
  });

  test("empty cart is zero", () => {
    expect(total([])).toBe(0);
  });

  test("applies a discount", () => {
    expect(total([{ price: 10, qty: 1 }])).toBe(9);
  });

  test.skip("ships abroad", () => {});

  test.todo("supports coupons");

  describe("checkout", () => {
    test.each(["naïve", "日本語", "a b"])("accepts name %s", (name) => {
      expect(name.length).toBeGreaterThan(0);
    });

    test("times out on the gateway", () => {
      throw new TypeError("gateway is not a function");
    });
  });
});

test("top level test", () => {
  expect(true).toBe(true);
});
