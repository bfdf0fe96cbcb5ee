package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestGoldenHelp snapshots every command's --help, so a change to what users
// read is a reviewed change. UPDATE_GOLDEN=1 (make generate) rewrites them.
func TestGoldenHelp(t *testing.T) {
	root := NewRoot(&Env{IO: IO{Out: &bytes.Buffer{}, Err: &bytes.Buffer{}}, Getenv: func(string) string { return "" }})
	var paths [][]string
	var walk func(c *cobra.Command, prefix []string)
	walk = func(c *cobra.Command, prefix []string) {
		if c.Hidden || c.Name() == "completion" || c.Name() == "help" {
			return
		}
		paths = append(paths, prefix)
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, prefix...), sub.Name()))
		}
	}
	walk(root, nil)
	if len(paths) < 10 {
		t.Fatalf("found only %d commands; the walk is broken", len(paths))
	}
	for _, p := range paths {
		name := "djdeploy"
		if len(p) > 0 {
			name += "_" + strings.Join(p, "_")
		}
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Main(context.Background(), append(append([]string{}, p...), "--help"), IO{Out: &out, Err: &errb}, func(string) string { return "" })
			if code != 0 {
				t.Fatalf("--help exited %d: %s", code, errb.String())
			}
			golden := filepath.Join("testdata", "help", name+".golden")
			if os.Getenv("UPDATE_GOLDEN") != "" {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("no snapshot %s: run make generate", golden)
			}
			if !bytes.Equal(want, out.Bytes()) {
				t.Fatalf("%s --help changed; review it and run make generate.\n--- got\n%s", strings.Join(append([]string{"djdeploy"}, p...), " "), out.String())
			}
		})
	}
}
