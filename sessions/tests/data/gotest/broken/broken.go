// Package broken does not compile: its test binary cannot be built.
package broken

func Answer() int { return "forty-two" }
