package emulator

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFindPythonIsAbsolute: a relative --python (make demo passes
// .tools/py/bin/python) must still name the interpreter when builds and
// apps run inside their release folders; it failed the demo's Oryx build
// with "fork/exec .tools/py/bin/python: no such file or directory".
func TestFindPythonIsAbsolute(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bin", "python"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	got, err := findPython("bin/python")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "bin", "python"); got != want {
		t.Errorf("findPython(bin/python) = %q, want %q", got, want)
	}
}
