package github

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/ci"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/settings"
)

const (
	accessToken = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.s3cr3t-access"
	ghToken     = "ghs_s3cr3tInstallationToken000000000000"
	oidcReq     = "oidc-request-bearer-s3cr3t"
	connString  = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=s3cr3tKey==;\nBlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)

type harness struct {
	env     map[string]string
	dir     string
	stdout  bytes.Buffer
	client  *http.Client
	gotVals *settings.Values
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	h := &harness{dir: dir, env: map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
		"GITHUB_REPOSITORY":   "acme/shop",
		"GITHUB_RUN_ID":       "991",
		"GITHUB_SHA":          "0123456789abcdef0123456789abcdef01234567",
		"GITHUB_SERVER_URL":   "https://github.com",
		"GITHUB_WORKSPACE":    dir,
		"INPUT_PROJECT":       filepath.Join(dir, "project"),
		// go-githubactions reads the event file on Context().
		"GITHUB_EVENT_PATH": filepath.Join(dir, "event.json"),
		"GITHUB_EVENT_NAME": "push",
	}}
	if err := os.MkdirAll(filepath.Join(dir, "project"), 0o755); err != nil {
		t.Fatal(err)
	}
	h.writeEvent(t, `{}`)
	return h
}

func (h *harness) writeEvent(t *testing.T, js string) {
	if err := os.WriteFile(filepath.Join(h.dir, "event.json"), []byte(js), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) run(t *testing.T, f RunFunc) int {
	t.Helper()
	wrapped := func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		h.gotVals = v
		return f(ctx, v, rep)
	}
	return Run(context.Background(), Options{Getenv: func(k string) string { return h.env[k] }, Stdout: &h.stdout, HTTPClient: h.client}, wrapped)
}

func (h *harness) file(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join(h.dir, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

var start = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func sampleRun(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
	for _, step := range []string{"build", "static sync", "deploy"} {
		end := progress.Step(rep, step)
		rep.Infof("%s running", step)
		end()
	}
	return &report.Release{
		ReleaseID: "r1", App: v.String("app"), Slot: v.String("slot"), URL: "https://shop.azurewebsites.net",
		SlotURL: "https://shop-staging.azurewebsites.net", SlotRelease: "r1", Outcome: report.Succeeded, Started: start, Duration: 3 * time.Second,
		Steps:       []report.Step{{Name: "build", Status: report.StepDone, Started: start, Duration: time.Second}},
		PurgedPaths: []string{"/static/a.css", "/static/b.js"}, StaticUploaded: 2,
		Checks: []report.Check{{ID: "security.W004", Level: "warning", Message: "You have not set SECURE_HSTS_SECONDS.", File: "shop/settings.py"}},
	}, nil
}

func TestMasksComeFirstAndSecretsNeverLeak(t *testing.T) {
	h := newHarness(t)
	h.env["DJDEPLOY_ACCESS_TOKEN"] = accessToken
	h.env["INPUT_STORAGE-CONNECTION-STRING"] = connString
	h.env["INPUT_GITHUB-TOKEN"] = ghToken
	h.env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"] = oidcReq
	h.env["INPUT_GITHUB-DEPLOYMENT"] = "false"
	code := h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		// A careless step that prints a secret: the runner would mask it,
		// so the mask must already be registered.
		rep.Infof("connecting with %s", v.String("access-token"))
		return sampleRun(ctx, v, rep)
	})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(h.stdout.String()), "\n")
	masks := map[string]bool{}
	i := 0
	for ; i < len(lines) && strings.HasPrefix(lines[i], "::add-mask::"); i++ {
		masks[strings.TrimPrefix(lines[i], "::add-mask::")] = true
	}
	for _, s := range []string{accessToken, ghToken, oidcReq, "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"} {
		if !masks[s] {
			t.Errorf("%q not masked before the first other line; masks: %v", s, masks)
		}
	}
	for _, l := range lines[i:] {
		if strings.HasPrefix(l, "::add-mask::") {
			t.Errorf("mask printed after other output: %s", l)
		}
	}
	rest := strings.Join(lines[i:], "\n") + h.file(t, "output") + h.file(t, "summary")
	// The step printed the token itself (the runner masks it); nothing
	// djdeploy writes on its own may carry a secret.
	rest = strings.Replace(rest, "connecting with "+accessToken, "", 1)
	for _, s := range []string{accessToken, ghToken, oidcReq, "s3cr3tKey"} {
		if strings.Contains(rest, s) {
			t.Errorf("secret %q appears in the log, outputs or summary", s)
		}
	}
}

func TestInputsRankAboveEnvironmentAndFile(t *testing.T) {
	h := newHarness(t)
	if err := os.WriteFile(filepath.Join(h.dir, "project", "djdeploy.yaml"), []byte("app: from-file\nslot: file-slot\nresource-group: file-rg\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.env["DJDEPLOY_SLOT"] = "env-slot"
	h.env["DJDEPLOY_RESOURCE_GROUP"] = "env-rg"
	h.env["INPUT_RESOURCE-GROUP"] = "input-rg"
	h.env["INPUT_COMMAND"] = "deploy"
	if code := h.run(t, sampleRun); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	for name, want := range map[string]string{"app": "from-file", "slot": "env-slot", "resource-group": "input-rg", "command": "deploy", "static-container": "static"} {
		if got := h.gotVals.String(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

func TestBadInputIsAUsageErrorNamingTheInput(t *testing.T) {
	h := newHarness(t)
	h.env["INPUT_PR-COMMENT"] = "maybe"
	ran := false
	code := h.run(t, func(context.Context, *settings.Values, progress.Reporter) (*report.Release, error) {
		ran = true
		return nil, nil
	})
	if code != problem.ExitUsage || ran {
		t.Fatalf("exit %d, ran %v; want exit 2 without running", code, ran)
	}
	out := h.stdout.String()
	if !strings.Contains(out, "::error title=djdeploy::input pr-comment: \"maybe\" is not a boolean%0Afix: use true or false") {
		t.Errorf("error annotation missing or unclear:\n%s", out)
	}
}

func TestOutsideActionsIsAUsageError(t *testing.T) {
	h := newHarness(t)
	delete(h.env, "GITHUB_ACTIONS")
	if code := h.run(t, sampleRun); code != problem.ExitUsage {
		t.Fatalf("exit %d, want 2", code)
	}
}

func TestOutputsGroupsAnnotationsSummary(t *testing.T) {
	h := newHarness(t)
	h.env["INPUT_GITHUB-DEPLOYMENT"] = "false"
	if code := h.run(t, sampleRun); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	out := h.file(t, "output")
	const delim = "_GitHubActionsFileCommandDelimeter_"
	if !strings.Contains(out, "purged-paths<<"+delim+"\n/static/a.css\n/static/b.js\n"+delim+"\n") {
		t.Errorf("multi-line output not in the delimiter form:\n%s", out)
	}
	for _, want := range []string{"url<<" + delim + "\nhttps://shop.azurewebsites.net\n", "release-id<<" + delim + "\nr1\n", "static-uploaded<<" + delim + "\n2\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output file lacks %q:\n%s", want, out)
		}
	}
	log := h.stdout.String()
	if strings.Count(log, "::group::") != 3 || strings.Count(log, "::endgroup::") != 3 {
		t.Errorf("want one group per step (3), balanced:\n%s", log)
	}
	if !strings.Contains(log, "::group::static sync\nstatic sync running\n::endgroup::") {
		t.Errorf("step output not inside its group:\n%s", log)
	}
	if !strings.Contains(log, "::warning file=project/shop/settings.py,title=security.W004::You have not set SECURE_HSTS_SECONDS.") {
		t.Errorf("check finding not annotated on the settings file:\n%s", log)
	}
	sum := h.file(t, "summary")
	if !strings.Contains(sum, "```mermaid") || !strings.Contains(sum, "| build |") {
		t.Errorf("summary lacks the table or the Mermaid chart:\n%s", sum)
	}
}

func TestFailureStillReportsAndExitsOne(t *testing.T) {
	h := newHarness(t)
	h.env["INPUT_GITHUB-DEPLOYMENT"] = "false"
	code := h.run(t, func(context.Context, *settings.Values, progress.Reporter) (*report.Release, error) {
		return &report.Release{FailedStep: "swap", Steps: []report.Step{{Name: "swap", Status: report.StepFailed}}},
			problem.Failf("check the slot's logs", "warm-up failed: 502")
	})
	if code != problem.ExitFailure {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(h.stdout.String(), "::error title=djdeploy::warm-up failed: 502%0Afix: check the slot's logs") {
		t.Errorf("no error annotation:\n%s", h.stdout.String())
	}
	if sum := h.file(t, "summary"); !strings.Contains(sum, "failed at step `swap`") {
		t.Errorf("summary does not say which step failed:\n%s", sum)
	}
	if out := h.file(t, "output"); !strings.Contains(out, "outcome<<_GitHubActionsFileCommandDelimeter_\nfailed\n") {
		t.Errorf("outcome output not failed:\n%s", out)
	}
}

func TestUserTextCannotIssueCommands(t *testing.T) {
	h := newHarness(t)
	h.env["INPUT_GITHUB-DEPLOYMENT"] = "false"
	h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		rep.Infof("uploading %s", "x\n::add-mask::evil")
		return sampleRun(ctx, v, rep)
	})
	if strings.Contains(h.stdout.String(), "\n::add-mask::evil") {
		t.Errorf("a file name issued a workflow command:\n%s", h.stdout.String())
	}
}

// fakeGitHub serves the REST calls under a path prefix, as GitHub Enterprise
// does, which catches absolute-path bugs.
type fakeGitHub struct {
	mu       sync.Mutex
	statuses []map[string]any
	comments map[int64]string
	nextID   int64
	created  int
	edited   int
	deployed []map[string]any
}

func (f *fakeGitHub) handler(t *testing.T) http.Handler {
	mux := http.NewServeMux()
	const p = "/api/v3/repos/acme/shop"
	auth := func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("Authorization") != "Bearer "+ghToken {
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return false
		}
		return true
	}
	mux.HandleFunc("POST "+p+"/deployments", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.deployed = append(f.deployed, body)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":42}`)
	})
	mux.HandleFunc("POST "+p+"/deployments/42/statuses", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.statuses = append(f.statuses, body)
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":1}`)
	})
	mux.HandleFunc("GET "+p+"/issues/7/comments", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		// Two pages: a foreign comment first, ours (if any) on page 2.
		var list []map[string]any
		if r.URL.Query().Get("page") == "" || r.URL.Query().Get("page") == "1" {
			w.Header().Set("Link", fmt.Sprintf(`<%s?page=2>; rel="next"`, "http://"+r.Host+r.URL.Path))
			list = append(list, map[string]any{"id": 1, "body": "LGTM"})
		} else {
			for id, b := range f.comments {
				list = append(list, map[string]any{"id": id, "body": b})
			}
		}
		_ = json.NewEncoder(w).Encode(list)
	})
	mux.HandleFunc("POST "+p+"/issues/7/comments", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		f.mu.Lock()
		f.nextID++
		id := 100 + f.nextID
		f.comments[id] = body["body"]
		f.created++
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%d}`, id)
	})
	mux.HandleFunc("PATCH "+p+"/issues/comments/{id}", func(w http.ResponseWriter, r *http.Request) {
		if !auth(w, r) {
			return
		}
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		var id int64
		fmt.Sscan(r.PathValue("id"), &id)
		f.mu.Lock()
		if _, ok := f.comments[id]; !ok {
			f.mu.Unlock()
			http.NotFound(w, r)
			return
		}
		f.comments[id] = body["body"]
		f.edited++
		f.mu.Unlock()
		fmt.Fprintf(w, `{"id":%d}`, id)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected GitHub API call %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	return mux
}

func TestDeploymentStatusesAndPreviewCommentUpdatedNotDuplicated(t *testing.T) {
	fake := &fakeGitHub{comments: map[int64]string{}}
	srv := httptest.NewServer(fake.handler(t))
	defer srv.Close()

	runOnce := func(slotURL string, swapped ...bool) int {
		h := newHarness(t)
		h.client = srv.Client()
		h.env["GITHUB_API_URL"] = srv.URL + "/api/v3"
		h.env["INPUT_GITHUB-TOKEN"] = ghToken
		h.env["INPUT_PR-COMMENT"] = "true"
		h.env["INPUT_APP"] = "shop"
		h.env["GITHUB_EVENT_NAME"] = "pull_request"
		h.writeEvent(t, `{"number":7,"pull_request":{"number":7}}`)
		return h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
			r, err := sampleRun(ctx, v, rep)
			r.SlotURL = slotURL
			if len(swapped) > 0 {
				r.SlotRelease = "r0" // the swap left the previous release on the slot
			}
			return r, err
		})
	}
	if code := runOnce("https://shop-staging.azurewebsites.net"); code != 0 {
		t.Fatalf("first run: exit %d", code)
	}
	if code := runOnce("https://shop-staging-2.azurewebsites.net"); code != 0 {
		t.Fatalf("second run: exit %d", code)
	}
	// After a swap the slot serves the old release: the comment must not
	// send reviewers there (issue 13, item 1).
	if code := runOnce("https://shop-staging-3.azurewebsites.net", true); code != 0 {
		t.Fatalf("third run: exit %d", code)
	}

	if fake.created != 1 || fake.edited != 1 || len(fake.comments) != 1 {
		t.Errorf("comments created %d, edited %d, kept %d; want one created, then updated", fake.created, fake.edited, len(fake.comments))
	}
	for _, body := range fake.comments {
		if !strings.Contains(body, ci.PreviewMarker) || !strings.Contains(body, "https://shop-staging-2.azurewebsites.net") {
			t.Errorf("comment not updated to the second preview URL:\n%s", body)
		}
	}
	if len(fake.deployed) != 3 || fake.deployed[0]["ref"] != "0123456789abcdef0123456789abcdef01234567" || fake.deployed[0]["environment"] != "production" {
		t.Errorf("deployments: %v", fake.deployed)
	}
	if len(fake.statuses) != 6 {
		t.Fatalf("statuses: %v, want in_progress and success per run", fake.statuses)
	}
	if fake.statuses[0]["state"] != "in_progress" || fake.statuses[1]["state"] != "success" {
		t.Errorf("statuses: %v", fake.statuses)
	}
	if fake.statuses[1]["environment_url"] != "https://shop.azurewebsites.net" || fake.statuses[1]["log_url"] != "https://github.com/acme/shop/actions/runs/991" {
		t.Errorf("success status: %v", fake.statuses[1])
	}
}

func TestFailedReleaseMarksDeploymentFailed(t *testing.T) {
	fake := &fakeGitHub{comments: map[int64]string{}}
	srv := httptest.NewServer(fake.handler(t))
	defer srv.Close()
	h := newHarness(t)
	h.client = srv.Client()
	h.env["GITHUB_API_URL"] = srv.URL + "/api/v3"
	h.env["INPUT_GITHUB-TOKEN"] = ghToken
	code := h.run(t, func(context.Context, *settings.Values, progress.Reporter) (*report.Release, error) {
		return nil, errors.New("deploy: boom")
	})
	if code != 1 {
		t.Fatalf("exit %d", code)
	}
	if len(fake.statuses) != 2 || fake.statuses[1]["state"] != "failure" {
		t.Errorf("statuses: %v", fake.statuses)
	}
}

func TestDeploymentAPIFailureOnlyWarns(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"message":"Resource not accessible by integration"}`)
	}))
	defer srv.Close()
	h := newHarness(t)
	h.client = srv.Client()
	h.env["GITHUB_API_URL"] = srv.URL
	h.env["INPUT_GITHUB-TOKEN"] = ghToken
	if code := h.run(t, sampleRun); code != 0 {
		t.Fatalf("exit %d: a missing permission for deployment records must not fail a release", code)
	}
	if !strings.Contains(h.stdout.String(), "::warning::not recording a GitHub deployment") {
		t.Errorf("no warning:\n%s", h.stdout.String())
	}
}

func TestInputEnv(t *testing.T) {
	if got := InputEnv("resource-group"); got != "INPUT_RESOURCE-GROUP" {
		t.Errorf("InputEnv = %q", got)
	}
}

// TestAnnotationsNameRepoRelativeFiles: a project in a subfolder of the
// repository (app1/) gets its findings annotated on app1/mysite/settings.py,
// the path GitHub resolves from the workspace, not mysite/settings.py.
func TestAnnotationsNameRepoRelativeFiles(t *testing.T) {
	h := newHarness(t)
	h.env["INPUT_PROJECT"] = filepath.Join(h.dir, "app1")
	h.env["INPUT_GITHUB-DEPLOYMENT"] = "false"
	code := h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		r, err := sampleRun(ctx, v, rep)
		r.Checks = []report.Check{{ID: "security.W018", Level: "error", Message: "DEBUG is on.", File: "mysite/settings.py"}}
		return r, err
	})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	if want := "::error file=app1/mysite/settings.py,title=security.W018::DEBUG is on."; !strings.Contains(h.stdout.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, h.stdout.String())
	}
}
