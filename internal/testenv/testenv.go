// Package testenv gives tests the real components they run against
// (Debian's Django, Azurite) and enforces the project's rule: locally a
// missing component skips with a loud message; with CI=true it fails.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/djdeploy/djdeploy/internal/azurite"
)

// InCI reports whether missing components must fail tests.
func InCI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// Missing fails the test in CI and skips it elsewhere.
func Missing(t testing.TB, what, fix string) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is missing (CI=true, so this fails instead of skipping): %s", what, fix)
	}
	t.Skipf("SKIPPED: %s is missing: %s", what, fix)
}

// Python returns an interpreter that imports django, gunicorn and uvicorn:
// $DJDEPLOY_TEST_PYTHON, else /usr/bin/python3 (Debian's, where make deps
// installs them). The python3 first on PATH may be another interpreter.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("DJDEPLOY_TEST_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	out, err := exec.Command(py, "-c", "import django, gunicorn, uvicorn; print(django.get_version())").CombinedOutput()
	if err != nil {
		Missing(t, "Django, gunicorn and uvicorn for "+py, "run 'make deps' (Debian packages python3-django gunicorn python3-uvicorn); "+string(out))
	}
	return py
}

// Azurite starts a fresh Azurite for the test and stops it at cleanup.
func Azurite(t testing.TB) *azurite.Server {
	t.Helper()
	if _, err := azurite.Find(); err != nil {
		Missing(t, "azurite", err.Error())
	}
	s, err := azurite.Start(context.Background(), azurite.Options{InMemory: true})
	if err != nil {
		t.Fatalf("starting azurite: %v", err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

// RepoRoot is the folder holding go.mod, found upward from the test's
// working directory (a package folder).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's folder")
		}
		dir = parent
	}
}

// Conformance returns the bin folder of the venv holding Microsoft's
// clients (azure-cli, azure-identity, azure-mgmt-web, azure-mgmt-cdn,
// azure-storage-blob): $DJDEPLOY_TEST_CONFORMANCE, else .tools/conformance/bin.
func Conformance(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("DJDEPLOY_TEST_CONFORMANCE")
	if bin == "" {
		bin = filepath.Join(RepoRoot(t), ".tools", "conformance", "bin")
	}
	out, err := exec.Command(filepath.Join(bin, "python"), "-c", "import azure.cli.core, azure.identity, azure.mgmt.web, azure.mgmt.cdn, azure.storage.blob").CombinedOutput()
	if err != nil {
		Missing(t, "azure-cli and the Azure SDK for Python in "+bin, "run 'make deps' (installs .ci/python/conformance.txt into .tools/conformance); "+string(out))
	}
	return bin
}
