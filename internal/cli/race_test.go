package cli

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
)

// TestMainConcurrently runs several commands in one process at once, as the
// end-to-end tests do: process-wide state Main sets (cobra's sorting, the
// command order) must be set once, not by every run (under -race this
// failed CI in internal/outside).
func TestMainConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out strings.Builder
			if code := Main(context.Background(), []string{"version"}, IO{In: strings.NewReader(""), Out: &out, Err: io.Discard}, func(string) string { return "" }); code != 0 || !strings.HasPrefix(out.String(), "djdeploy ") {
				t.Errorf("version: exit %d, %q", code, out.String())
			}
		}()
	}
	wg.Wait()
}
