// Package testenv gives tests the real components they run against (the
// Python 3.12 environments `make deps` builds from PyPI lock files under
// .tools/, Azurite, Microsoft's clients) and enforces the project's rule:
// locally a missing component skips with a loud message; with CI=true it
// fails.
package testenv

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
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

const makeDeps = "run 'make deps' (it builds .tools/py, .tools/py-django6 and the other environments from the hashed locks in .ci/python, on Python 3.12)"

// Python returns the interpreter of the main test environment, .tools/py
// (Django 5.2 LTS, gunicorn, uvicorn, whitenoise, uv, from
// .ci/python/py.txt), or $DJDEPLOY_TEST_PYTHON.
func Python(t testing.TB) string {
	t.Helper()
	py := toolPath(t, "DJDEPLOY_TEST_PYTHON", ".tools/py/bin/python")
	requirePython(t, py, "Django, gunicorn and uvicorn",
		"import django, gunicorn, uvicorn; assert django.VERSION[0] >= 5, 'Django %s is older than 5.2 LTS' % django.get_version()")
	return py
}

// PythonDjango6 returns the interpreter of the environment with the newest
// Django 6.x (.tools/py-django6), or $DJDEPLOY_TEST_PYTHON_DJANGO6.
func PythonDjango6(t testing.TB) string {
	t.Helper()
	py := toolPath(t, "DJDEPLOY_TEST_PYTHON_DJANGO6", ".tools/py-django6/bin/python")
	requirePython(t, py, "Django 6, gunicorn and uvicorn",
		"import django, gunicorn, uvicorn; assert django.VERSION[0] == 6, django.get_version()")
	return py
}

// UV returns the uv of the main test environment (.tools/py/bin/uv), or
// $DJDEPLOY_TEST_UV.
func UV(t testing.TB) string {
	t.Helper()
	uv := toolPath(t, "DJDEPLOY_TEST_UV", ".tools/py/bin/uv")
	if out, err := exec.Command(uv, "--version").CombinedOutput(); err != nil {
		Missing(t, "uv ("+uv+")", makeDeps+", or set DJDEPLOY_TEST_UV: "+strings.TrimSpace(string(out)+" "+err.Error()))
	}
	return uv
}

// BasePython returns a Python 3.12 that cannot import Django, as App
// Service's runtime and the action's image have: $DJDEPLOY_TEST_BASE_PYTHON,
// else the newest pyenv 3.12.x, else python3.12 on PATH.
func BasePython(t testing.TB) string {
	t.Helper()
	var cands []string
	if p := os.Getenv("DJDEPLOY_TEST_BASE_PYTHON"); p != "" {
		cands = []string{p}
	} else {
		cands = Python312s()
	}
	why := ""
	for _, py := range cands {
		out, err := exec.Command(py, "-c", "import sys, importlib.util; assert sys.version_info[:2] == (3, 12), sys.version; assert importlib.util.find_spec('django') is None, 'it imports django'").CombinedOutput()
		if err == nil {
			return py
		}
		why += " " + py + ": " + lastLine(out)
	}
	Missing(t, "a Python 3.12 without Django", "install Python 3.12 (pyenv install 3.12) or set DJDEPLOY_TEST_BASE_PYTHON;"+why)
	return ""
}

// Python312s lists this machine's Python 3.12 interpreters, best first:
// pyenv's (newest patch first), then python3.12 on PATH.
func Python312s() []string {
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", "3.12.*", "bin", "python3.12"))
	patch := func(p string) int {
		v := filepath.Base(filepath.Dir(filepath.Dir(p))) // 3.12.10
		n, _ := strconv.Atoi(v[strings.LastIndexByte(v, '.')+1:])
		return n
	}
	sort.Slice(found, func(i, j int) bool { return patch(found[i]) > patch(found[j]) })
	if lp, err := exec.LookPath("python3.12"); err == nil {
		found = append(found, lp)
	}
	return found
}

// requirePython checks py runs code (an import and version check), or
// reports the component missing.
func requirePython(t testing.TB, py, what, code string) {
	t.Helper()
	if out, err := exec.Command(py, "-c", code).CombinedOutput(); err != nil {
		Missing(t, what+" ("+py+")", makeDeps+": "+lastLine(out)+" "+err.Error())
	}
}

// toolPath is $env, else rel under the repository root.
func toolPath(t testing.TB, env, rel string) string {
	if p := os.Getenv(env); p != "" {
		return p
	}
	return filepath.Join(RepoRoot(t), filepath.FromSlash(rel))
}

func lastLine(b []byte) string {
	s := strings.TrimSpace(string(b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
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
