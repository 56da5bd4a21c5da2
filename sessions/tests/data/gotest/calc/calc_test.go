package calc

import (
	"fmt"
	"testing"
)

func TestAddPasses(t *testing.T) {
	if Add(2, 2) != 4 {
		t.Fatal("2 + 2 is not 4")
	}
}

func TestAddFails(t *testing.T) {
	t.Log("checking a wrong sum on purpose")
	if got := Add(2, 2); got != 5 {
		t.Errorf("Add(2, 2) = %d, want 5", got)
	}
}

func TestSkipped(t *testing.T) {
	t.Skip("needs a database")
}

func TestTable(t *testing.T) {
	for _, tc := range []struct{ a, b, want int }{{1, 1, 2}, {2, 3, 5}, {4, 4, 9}} {
		tc := tc
		t.Run(fmt.Sprintf("%d+%d", tc.a, tc.b), func(t *testing.T) {
			if got := Add(tc.a, tc.b); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestNestedSkip(t *testing.T) {
	t.Run("inner", func(t *testing.T) {
		t.Run("deep", func(t *testing.T) { t.Skip("not on this platform") })
		t.Run("ok", func(t *testing.T) {})
	})
}

func TestParallel(t *testing.T) {
	for _, name := range []string{"a", "b"} {
		name := name
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Logf("parallel %s", name)
		})
	}
}
