package cli_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/djdeploy/djdeploy/internal/cli"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestJSONEveryCommand runs every command with --json against the emulator
// and Azurite, successes and failures, and validates each document against
// internal/cli/json-output.schema.json with an independent validator: one shape,
// outcome and error always present, arrays never null.
func TestJSONEveryCommand(t *testing.T) {
	py := e2e.Require(t, "every command with --json against the emulator")
	schema := cli.CompileSchema(t)
	emu := e2e.Emulator(t, py)
	base := e2e.Env(emu, py)
	proj := e2e.Project(t, "jsonapp")
	work := t.TempDir()
	out := filepath.Join(work, "out")

	// run runs one command in-process and checks its envelope.
	run := func(t *testing.T, env map[string]string, wantCode int, wantOutcome string, args ...string) *cli.Envelope {
		t.Helper()
		r := e2e.Main(t.Context(), env, append(args, "--json")...)
		return checkEnvelope(t, schema, r.Code, r.Stdout, r.Stderr, wantCode, wantOutcome, strings.Join(args[:1], " "))
	}

	var releaseID string
	t.Run("build", func(t *testing.T) {
		var res struct {
			ReleaseID string `json:"release_id"`
		}
		env := run(t, base, 0, cli.OutcomeSucceeded, "build", "--project", proj, "--out", out)
		decode(t, env, &res)
		if releaseID = res.ReleaseID; releaseID == "" {
			t.Fatal("no release id")
		}
	})
	syncOut := filepath.Join(work, "sync.json")
	t.Run("static sync", func(t *testing.T) {
		r := e2e.Main(t.Context(), base, "static", "sync", "--source", filepath.Join(out, "static"), "--json")
		checkEnvelope(t, schema, r.Code, r.Stdout, r.Stderr, 0, cli.OutcomeSucceeded, "static sync")
		if err := os.WriteFile(syncOut, []byte(r.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		// an unchanged second sync: empty lists are [] and not null
		env := run(t, base, 0, cli.OutcomeSucceeded, "static", "sync", "--source", filepath.Join(out, "static"))
		var res struct {
			Uploaded   int      `json:"uploaded"`
			PurgePaths []string `json:"purge_paths"`
		}
		decode(t, env, &res)
		if res.Uploaded != 0 || res.PurgePaths == nil {
			t.Errorf("a second sync uploaded %d files, purge_paths %v", res.Uploaded, res.PurgePaths)
		}
	})
	t.Run("static sync --dry-run", func(t *testing.T) {
		run(t, base, 0, cli.OutcomePlanned, "static", "sync", "--source", filepath.Join(out, "static"), "--dry-run")
	})
	t.Run("deploy", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "deploy", "--package", filepath.Join(out, "app.zip"), "--fix-settings")
		// bad input: the same envelope, with the usage error
		env := run(t, base, 2, cli.OutcomeFailed, "deploy", "--package", filepath.Join(work, "missing.zip"))
		if env.Error.Code != cli.CodeUsage || env.Result != nil {
			t.Errorf("error %+v, result %v", env.Error, env.Result)
		}
	})
	t.Run("swap", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "swap", "--health-path", "/")
		// production now answers with the release just swapped in; asking
		// for another one fails verification, and the swap is undone
		env := run(t, base, 1, cli.OutcomeRolledBack, "swap", "--health-path", "/", "--expect-release", "not-this-release", "--verify-timeout", "3s")
		var res struct {
			Swapped    bool `json:"swapped"`
			RolledBack bool `json:"rolled_back"`
		}
		decode(t, env, &res)
		if !res.Swapped || !res.RolledBack {
			t.Errorf("a failed verification: %+v", res)
		}
	})
	t.Run("purge", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "purge", "--changed-file", syncOut)
		run(t, base, 0, cli.OutcomeSucceeded, "purge", "--path", "/static/nothing.css", "--no-wait")
	})
	t.Run("static prune", func(t *testing.T) {
		run(t, base, 0, cli.OutcomePlanned, "static", "prune", "--dry-run")
	})
	t.Run("static mark-production", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "static", "mark-production", releaseID)
		run(t, base, 1, cli.OutcomeFailed, "static", "mark-production", "no-such-release")
	})
	t.Run("release --plan", func(t *testing.T) {
		run(t, base, 0, cli.OutcomePlanned, "release", "--project", proj, "--fix-settings", "--plan")
	})
	t.Run("release", func(t *testing.T) {
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello from the JSON test")
		env := run(t, base, 0, cli.OutcomeSucceeded, "release", "--project", proj, "--fix-settings", "--static-grace", "0s",
			"--static-cors-origins", "https://www.example.com")
		var res struct {
			Steps []json.RawMessage `json:"steps"`
		}
		decode(t, env, &res)
		if len(res.Steps) == 0 {
			t.Error("a release without steps")
		}
		// the release set the CORS rule (the flag used to do nothing
		// there): static sync finds nothing left to change
		env = run(t, base, 0, cli.OutcomeSucceeded, "static", "sync", "--source", filepath.Join(out, "static"),
			"--static-cors-origins", "https://www.example.com")
		var sync struct {
			CORSUpdated bool `json:"cors_updated"`
		}
		decode(t, env, &sync)
		if sync.CORSUpdated {
			t.Error("release --static-cors-origins did not set the storage account's CORS rule")
		}
	})
	t.Run("release that fails", func(t *testing.T) {
		// the slot never answers with an accepted status: the release stops
		// at warm-up, production untouched, and the result says where
		e2e.Edit(t, proj, "pages/templates/pages/home.html", "Hello from the JSON test", "Hello from a release that fails")
		env := run(t, base, 1, cli.OutcomeFailed, "release", "--project", proj, "--fix-settings",
			"--health-statuses", "299", "--warmup-timeout", "3s")
		var res struct {
			FailedStep string `json:"failed_step"`
			Live       bool   `json:"live"`
		}
		decode(t, env, &res)
		if res.FailedStep != "warm-up" || res.Live || env.Error == nil || env.Error.Fix == "" {
			t.Errorf("failed release: %+v, error %+v", res, env.Error)
		}
	})
	t.Run("preview", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "preview", "--pr", "7", "--project", proj, "--fix-settings")
		run(t, base, 0, cli.OutcomeSucceeded, "preview", "--pr", "7", "--delete")
		run(t, base, 2, cli.OutcomeFailed, "preview", "--pr", "seven")
	})
	t.Run("doctor", func(t *testing.T) {
		// the demo app's slot has an error finding (HTTPS Only off): exit 1,
		// and the envelope carries both the findings and the error
		env := run(t, base, 1, cli.OutcomeFailed, "doctor", "--strict")
		var res struct {
			Findings []json.RawMessage `json:"findings"`
			Failed   bool              `json:"failed"`
		}
		decode(t, env, &res)
		if !res.Failed || len(res.Findings) == 0 || env.Error == nil {
			t.Errorf("doctor: %+v, error %+v", res, env.Error)
		}
	})
	t.Run("version and settings", func(t *testing.T) {
		run(t, base, 0, cli.OutcomeSucceeded, "version")
		env := run(t, base, 0, cli.OutcomeSucceeded, "settings")
		var res struct {
			Settings []struct {
				Name string `json:"name"`
			} `json:"settings"`
		}
		decode(t, env, &res)
		if len(res.Settings) < 20 {
			t.Errorf("only %d settings", len(res.Settings))
		}
	})
	t.Run("ci", func(t *testing.T) {
		ghOut := filepath.Join(work, "github_output")
		gh := e2e.With(base, map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": ghOut,
			"INPUT_COMMAND": "build", "INPUT_PROJECT": proj, "INPUT_OUT": filepath.Join(work, "ci-out"),
			"INPUT_GITHUB-DEPLOYMENT": "false", "INPUT_JOB-SUMMARY": "false"})
		env := run(t, gh, 0, cli.OutcomeSucceeded, "ci", "github")
		var res struct {
			ReleaseID string `json:"release_id"`
		}
		decode(t, env, &res)
		if res.ReleaseID == "" {
			t.Error("ci github --json: no release id")
		}
		az := e2e.With(base, map[string]string{"TF_BUILD": "True", "DJDEPLOY_COMMAND": "swap", "DJDEPLOY_SLOT": "no-such-slot"})
		r := e2e.Main(t.Context(), az, "ci", "azure-pipelines", "--json")
		checkEnvelope(t, schema, r.Code, r.Stdout, r.Stderr, r.Code, cli.OutcomeFailed, "ci azure-pipelines")
		if r.Code == 0 {
			t.Errorf("a swap of a slot that does not exist succeeded:\n%s", r)
		}
	})
}

// TestJSONEmulator runs the real binary: the emulator prints its envelope
// once ready and keeps serving until stopped.
func TestJSONEmulator(t *testing.T) {
	py := e2e.Require(t, "the emulator with --json")
	schema := cli.CompileSchema(t)
	cmd := exec.Command(e2e.Binary(t), "emulator", "--json", "--no-azurite", "--python", py)
	// The emulator writes stderr while the test reads it: a locked buffer.
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The envelope is indented JSON that ends with a line "}".
	var doc strings.Builder
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		doc.WriteString(sc.Text() + "\n")
		if sc.Text() == "}" {
			break
		}
	}
	env := checkEnvelope(t, schema, 0, doc.String(), stderr.String(), 0, cli.OutcomeRunning, "emulator")
	var res struct {
		Env map[string]string `json:"env"`
	}
	decode(t, env, &res)
	if res.Env["DJDEPLOY_ARM_ENDPOINT"] == "" {
		t.Errorf("the result has no ARM endpoint: %v", res.Env)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the emulator did not stop cleanly: %v\n%s", err, stderr.String())
	}
	rest, _ := bufio.NewReader(stdout).ReadString(0)
	if strings.TrimSpace(rest) != "" {
		t.Errorf("stdout has more than the one envelope: %q", rest)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// checkEnvelope validates stdout against the schema and checks the exit
// code, the outcome ("" any) and the command.
func checkEnvelope(t *testing.T, schema *jsonschema.Schema, code int, stdout, stderr string, wantCode int, wantOutcome, command string) *cli.Envelope {
	t.Helper()
	if code != wantCode {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, wantCode, stdout, stderr)
	}
	if err := cli.ValidateOutput(t, schema, stdout); err != nil {
		t.Fatalf("stdout does not match internal/cli/json-output.schema.json: %v\n%s", err, stdout)
	}
	var env cli.Envelope
	if err := json.Unmarshal([]byte(stdout), &env); err != nil {
		t.Fatal(err)
	}
	if wantOutcome != "" && env.Outcome != wantOutcome {
		t.Errorf("outcome %q, want %q (error %+v)", env.Outcome, wantOutcome, env.Error)
	}
	if !strings.HasPrefix(env.Command, command) {
		t.Errorf("command %q, want %q", env.Command, command)
	}
	return &env
}

// decode reads env's result into v.
func decode(t *testing.T, env *cli.Envelope, v any) {
	t.Helper()
	b, err := json.Marshal(env.Result)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("result: %v\n%s", err, b)
	}
}
