package cli_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/djdeploy/djdeploy/internal/cli"
	"github.com/djdeploy/djdeploy/internal/e2e"
)

// TestBadInputBeforeAnyRequest runs the real binary with input that can
// never work, against a Resource Manager that counts what it is asked:
// each case must exit 2 with one message and its fix, change nothing, and
// send no request at all (so an unreachable ARM is never retried).
func TestBadInputBeforeAnyRequest(t *testing.T) {
	bin := e2e.Binary(t)
	var requests atomic.Int64
	arm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "the test's ARM answers nothing", http.StatusServiceUnavailable)
	}))
	defer arm.Close()
	schema := cli.CompileSchema(t)

	dir := t.TempDir()
	notZip := filepath.Join(dir, "notzip", "app.zip")
	write(t, notZip, "this is not a zip archive\n")
	write(t, filepath.Join(dir, "notzip", "release.json"), `{"release_id":"r1"}`)
	bare := filepath.Join(dir, "bare", "app.zip")
	writeZip(t, bare, map[string]string{"manage.py": "print('hi')\n"})

	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir,
		"DJDEPLOY_ARM_ENDPOINT=" + arm.URL, "DJDEPLOY_ACCESS_TOKEN=token-for-the-test",
		"AZURE_SUBSCRIPTION_ID=00000000-0000-0000-0000-000000000000",
		"DJDEPLOY_RESOURCE_GROUP=rg", "DJDEPLOY_APP=site",
	}
	long := strings.Repeat("a", 55)
	for _, tc := range []struct {
		name string
		args []string
		env  []string
		want string // in the message
	}{
		{"deploy: missing package", []string{"deploy", "--package", filepath.Join(dir, "missing", "app.zip")}, nil, "does not exist"},
		{"deploy: package is a folder", []string{"deploy", "--package", dir}, nil, "is a folder"},
		{"deploy: not a zip", []string{"deploy", "--package", notZip}, nil, "not a zip"},
		{"deploy: --fix-settings without release.json", []string{"deploy", "--package", bare, "--fix-settings"}, nil, "release.json"},
		{"preview: pull request number not a number", []string{"preview", "--pr", "12a"}, nil, "not a positive whole number"},
		{"preview: slot name too long", []string{"preview", "--pr", "42", "--app", long}, nil, "characters"},
		{"ci github: unknown command", []string{"ci", "github"}, []string{"GITHUB_ACTIONS=true", "INPUT_COMMAND=deploy-everything"}, "deploy-everything"},
		{"ci azure-pipelines: unknown command", []string{"ci", "azure-pipelines"}, []string{"TF_BUILD=True", "DJDEPLOY_COMMAND=releas"}, "releas"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				before := requests.Load()
				args := tc.args
				if asJSON {
					args = append(append([]string{}, args...), "--json")
				}
				cmd := exec.Command(bin, args...)
				cmd.Dir = dir
				cmd.Env = append(append([]string{}, env...), tc.env...)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				err := cmd.Run()
				code := cmd.ProcessState.ExitCode()
				if code != 2 {
					t.Fatalf("%v: exit %d (%v), want 2\nstdout: %s\nstderr: %s", args, code, err, stdout.String(), stderr.String())
				}
				if n := requests.Load() - before; n != 0 {
					t.Errorf("%v sent %d request(s) to Resource Manager before refusing the input", args, n)
				}
				msg := stderr.String()
				ci := args[0] == "ci"
				if ci && !asJSON {
					msg += stdout.String() // the CI's own error format, on stdout
				}
				if !strings.Contains(msg, tc.want) || (!ci && strings.Count(msg, "error:") != 1) || strings.Contains(msg, "goroutine ") {
					t.Errorf("%v: want one error naming %q, no stack trace:\n%s", args, tc.want, msg)
				}
				if !strings.Contains(msg, "fix:") && !strings.Contains(msg, "::error") && !strings.Contains(msg, "##vso") {
					t.Errorf("%v: the message has no fix:\n%s", args, msg)
				}
				if !asJSON {
					continue
				}
				if err := cli.ValidateOutput(t, schema, stdout.String()); err != nil {
					t.Fatalf("%v: stdout does not match the schema: %v\n%s", args, err, stdout.String())
				}
				var out cli.Envelope
				if err := json.Unmarshal(stdout.Bytes(), &out); err != nil || out.Error == nil || out.Error.Code != cli.CodeUsage {
					t.Errorf("%v: the envelope is not a usage error: %s", args, stdout.String())
				}
			}
		})
	}
}

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeZip(t *testing.T, path string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range files {
		w, _ := zw.Create(name)
		w.Write([]byte(body))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
}
