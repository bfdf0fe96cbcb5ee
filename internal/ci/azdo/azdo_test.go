package azdo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

func TestEscaping(t *testing.T) {
	for _, tc := range []struct {
		props      map[string]string
		data, want string
	}{
		{nil, "100% done\r\nnext", "##vso[task.setsecret]100%AZP25 done%0D%0Anext"},
		{map[string]string{"variable": "x;y]z", "isoutput": "true"}, "a]b;c", "##vso[task.setvariable isoutput=true;variable=x%3By%5Dz;]a]b;c"},
		{map[string]string{"type": "error", "sourcepath": "a/b.py"}, "%AZP25", "##vso[task.logissue sourcepath=a/b.py;type=error;]%AZP25AZP25"},
	} {
		name := "task.setsecret"
		if tc.props["variable"] != "" {
			name = "task.setvariable"
		} else if tc.props != nil {
			name = "task.logissue"
		}
		if got := Command(name, tc.props, tc.data); got != tc.want {
			t.Errorf("Command = %q, want %q", got, tc.want)
		}
	}
}

func TestNeutralize(t *testing.T) {
	for in, bad := range map[string]string{
		"file ##vso[task.setvariable variable=x]y": "##vso[",
		"##[group]evil": "##[group]",
	} {
		if strings.Contains(neutralize(in), bad) {
			t.Errorf("neutralize(%q) = %q still carries %q", in, neutralize(in), bad)
		}
	}
}

type harness struct {
	env    map[string]string
	dir    string
	stdout bytes.Buffer
	vals   *settings.Values
}

func newHarness(t *testing.T) *harness {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "project"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &harness{dir: dir, env: map[string]string{
		"TF_BUILD":            "True",
		"AGENT_TEMPDIRECTORY": dir,
		"SYSTEM_JOBID":        "job1",
		"DJDEPLOY_PROJECT":    filepath.Join(dir, "project"),
		// The repository root, against which the agent resolves sourcepath.
		"BUILD_SOURCESDIRECTORY": dir,
	}}
}

func (h *harness) run(t *testing.T, f RunFunc) int {
	return Run(context.Background(), Options{Getenv: func(k string) string { return h.env[k] }, Stdout: &h.stdout},
		func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
			h.vals = v
			return f(ctx, v, rep)
		})
}

func sampleRun(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
	for _, s := range []string{"build", "deploy"} {
		end := progress.Step(rep, s)
		rep.Infof("%s running", s)
		end()
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	return &report.Release{
		ReleaseID: "r1", App: "shop", Slot: "staging", URL: "https://shop.azurewebsites.net", SlotURL: "https://shop-staging.azurewebsites.net",
		SlotRelease: "r1", Outcome: report.Succeeded, Started: t0, Duration: 2 * time.Second,
		Steps:       []report.Step{{Name: "build", Status: report.StepDone, Started: t0, Duration: time.Second}},
		PurgedPaths: []string{"/static/a.css", "/static/b.js"},
		Checks:      []report.Check{{ID: "security.W004", Level: "warning", Message: "HSTS off", File: "shop/settings.py"}},
	}, nil
}

func TestStepOutputsIssuesSummaryAndSecrets(t *testing.T) {
	h := newHarness(t)
	h.env["SYSTEM_ACCESSTOKEN"] = "ado-s3cr3t-token"
	h.env["DJDEPLOY_ACCESS_TOKEN"] = "arm-s3cr3t-token"
	h.env["DJDEPLOY_APP"] = "from-env"
	if err := os.WriteFile(filepath.Join(h.dir, "project", "djdeploy.yaml"), []byte("app: from-file\nslot: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := h.run(t, sampleRun); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	if h.vals.String("app") != "from-env" || h.vals.String("slot") != "blue" {
		t.Errorf("app %q slot %q: environment must win over djdeploy.yaml, which wins over defaults", h.vals.String("app"), h.vals.String("slot"))
	}
	lines := strings.Split(strings.TrimSpace(h.stdout.String()), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "##vso[task.setsecret]") || !strings.HasPrefix(lines[1], "##vso[task.setsecret]") {
		t.Errorf("secrets not registered first:\n%s", h.stdout.String())
	}
	out := h.stdout.String()
	for _, want := range []string{
		"##[group]build\nbuild running\n##[endgroup]\n##[group]deploy\ndeploy running\n##[endgroup]\n",
		"##vso[task.setvariable isoutput=true;variable=purgedPaths;]/static/a.css%0A/static/b.js\n",
		"##vso[task.setvariable isoutput=true;variable=slotUrl;]https://shop-staging.azurewebsites.net\n",
		"##vso[task.logissue code=security.W004;sourcepath=project/shop/settings.py;type=warning;]security.W004: HSTS off\n",
		"##vso[task.uploadsummary]" + filepath.Join(h.dir, "djdeploy-summary-job1.md") + "\n",
		// No collection URI: the tag falls back to the logging command.
		"##vso[build.addbuildtag]djdeploy-r1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	sum, err := os.ReadFile(filepath.Join(h.dir, "djdeploy-summary-job1.md"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(sum), "mermaid") || !strings.Contains(string(sum), "| build |") {
		t.Errorf("summary must have the table and no Mermaid (Azure Pipelines does not render it):\n%s", sum)
	}
	rest := strings.Join(lines[2:], "\n") + string(sum)
	for _, s := range []string{"ado-s3cr3t-token", "arm-s3cr3t-token"} {
		if strings.Contains(rest, s) {
			t.Errorf("secret %q printed", s)
		}
	}
}

func TestErrorsAreIssuesWithExitCodes(t *testing.T) {
	h := newHarness(t)
	h.env["DJDEPLOY_PR_COMMENT"] = "perhaps"
	if code := h.run(t, sampleRun); code != problem.ExitUsage {
		t.Errorf("bad setting: exit %d, want 2", code)
	}
	if !strings.Contains(h.stdout.String(), `##vso[task.logissue type=error;]environment variable DJDEPLOY_PR_COMMENT: "perhaps" is not a boolean%0Afix: use true or false`) {
		t.Errorf("no error issue:\n%s", h.stdout.String())
	}

	h = newHarness(t)
	code := h.run(t, func(context.Context, *settings.Values, progress.Reporter) (*report.Release, error) {
		return nil, errors.New("swap: boom")
	})
	if code != problem.ExitFailure || !strings.Contains(h.stdout.String(), "variable=outcome;]failed") {
		t.Errorf("failed run: exit %d\n%s", code, h.stdout.String())
	}

	h = newHarness(t)
	delete(h.env, "TF_BUILD")
	if code := h.run(t, sampleRun); code != problem.ExitUsage {
		t.Errorf("outside Azure Pipelines: exit %d, want 2", code)
	}
}

// fakeADO is the part of the Azure DevOps REST API the adapter uses,
// including the location discovery the Go client does first.
type fakeADO struct {
	t        *testing.T
	url      string
	mu       sync.Mutex
	tags     []string
	threads  map[int]string // thread id -> first comment
	created  int
	updated  int
	options  int
	areasGet int
}

const (
	token = "ado-s3cr3t-token"
	proj  = "6ce954b1-ce1f-45d1-b94d-e6bf2464ba2c"
	repo  = "5febef5a-833d-4e14-b9c0-14cb638f91e6"
)

func (f *fakeADO) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+token {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"message":"TF400813: not authorized"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	f.mu.Lock()
	defer f.mu.Unlock()
	base := "/org"
	p := r.URL.Path
	loc := func(id, area, resource, route string) map[string]any {
		return map[string]any{"id": id, "area": area, "resourceName": resource, "routeTemplate": route,
			"resourceVersion": 1, "minVersion": "1.0", "maxVersion": "7.1", "releasedVersion": "7.0"}
	}
	switch {
	case r.Method == http.MethodOptions && p == base+"/_apis":
		f.options++
		json.NewEncoder(w).Encode(map[string]any{"count": 5, "value": []any{
			loc("e81700f7-3be2-46de-8624-2eb35882fcaa", "Location", "ResourceAreas", "_apis/{resource}/{areaId}"),
			loc("6e6114b2-8161-44c8-8f6c-c5505782427f", "build", "tags", "{project}/_apis/{area}/builds/{buildId}/{resource}/{*tag}"),
			loc("ab6e2e5d-a0b7-4153-b64a-a4efe0d49449", "git", "threads", "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}/{resource}/{threadId}"),
			loc("965a3ec7-5ed8-455a-bdcb-835a5ea7fe7b", "git", "comments", "{project}/_apis/{area}/repositories/{repositoryId}/pullRequests/{pullRequestId}/threads/{threadId}/{resource}/{commentId}"),
		}})
	case r.Method == http.MethodGet && p == base+"/_apis/ResourceAreas":
		f.areasGet++
		json.NewEncoder(w).Encode(map[string]any{"count": 2, "value": []any{
			map[string]any{"id": "965220d5-5bb9-42cf-8d67-9b146df2a5a4", "name": "build", "locationUrl": f.url + base + "/"},
			map[string]any{"id": "4e080c62-fa21-4fbc-8fef-2a10a2b38049", "name": "git", "locationUrl": f.url + base + "/"},
		}})
	case r.Method == http.MethodPut && strings.HasPrefix(p, base+"/"+proj+"/_apis/build/builds/77/tags/"):
		f.tags = append(f.tags, strings.TrimPrefix(p, base+"/"+proj+"/_apis/build/builds/77/tags/"))
		json.NewEncoder(w).Encode(map[string]any{"count": len(f.tags), "value": f.tags})
	case p == base+"/"+proj+"/_apis/git/repositories/"+repo+"/pullRequests/12/threads":
		switch r.Method {
		case http.MethodGet:
			var list []any
			list = append(list, map[string]any{"id": 1, "comments": []any{map[string]any{"id": 1, "content": "Please add tests"}}})
			for id, c := range f.threads {
				list = append(list, map[string]any{"id": id, "comments": []any{map[string]any{"id": 1, "content": c}}})
			}
			json.NewEncoder(w).Encode(map[string]any{"count": len(list), "value": list})
		case http.MethodPost:
			var th struct {
				Comments []struct{ Content string } `json:"comments"`
			}
			json.NewDecoder(r.Body).Decode(&th)
			id := 100 + len(f.threads)
			f.threads[id] = th.Comments[0].Content
			f.created++
			json.NewEncoder(w).Encode(map[string]any{"id": id})
		}
	case r.Method == http.MethodPatch && strings.HasPrefix(p, base+"/"+proj+"/_apis/git/repositories/"+repo+"/pullRequests/12/threads/"):
		var id, cid int
		if _, err := fmt.Sscanf(strings.TrimPrefix(p, base+"/"+proj+"/_apis/git/repositories/"+repo+"/pullRequests/12/threads/"), "%d/comments/%d", &id, &cid); err != nil || cid != 1 {
			http.Error(w, `{"message":"bad comment path"}`, http.StatusBadRequest)
			return
		}
		if _, ok := f.threads[id]; !ok {
			http.Error(w, `{"message":"no such thread"}`, http.StatusNotFound)
			return
		}
		var c struct{ Content string }
		json.NewDecoder(r.Body).Decode(&c)
		f.threads[id] = c.Content
		f.updated++
		json.NewEncoder(w).Encode(map[string]any{"id": cid, "content": c.Content})
	default:
		f.t.Errorf("unexpected Azure DevOps call %s %s", r.Method, r.URL)
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"message":"not found"}`)
	}
}

func TestBuildTagAndPreviewThreadUpdatedNotDuplicated(t *testing.T) {
	fake := &fakeADO{t: t, threads: map[int]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	fake.url = srv.URL

	runOnce := func(slotURL string, swapped ...bool) (int, string) {
		h := newHarness(t)
		for k, v := range map[string]string{
			"SYSTEM_ACCESSTOKEN": token, "SYSTEM_COLLECTIONURI": srv.URL + "/org/", "SYSTEM_TEAMPROJECTID": proj,
			"SYSTEM_TEAMPROJECT": "shop", "BUILD_BUILDID": "77", "BUILD_REPOSITORY_ID": repo, "BUILD_REPOSITORY_PROVIDER": "TfsGit",
			"SYSTEM_PULLREQUEST_PULLREQUESTID": "12", "BUILD_SOURCEVERSION": "abcdef0123456789", "DJDEPLOY_PR_COMMENT": "true",
		} {
			h.env[k] = v
		}
		code := h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
			r, err := sampleRun(ctx, v, rep)
			r.SlotURL = slotURL
			if len(swapped) > 0 {
				r.SlotRelease = "r0" // the swap left the previous release on the slot
			}
			return r, err
		})
		return code, h.stdout.String()
	}
	if code, out := runOnce("https://shop-staging.azurewebsites.net"); code != 0 || strings.Contains(out, "task.logissue type=warning") {
		t.Fatalf("first run: exit %d\n%s", code, out)
	}
	if code, out := runOnce("https://shop-staging-2.azurewebsites.net"); code != 0 || strings.Contains(out, "build.addbuildtag") {
		t.Fatalf("second run: exit %d (the API tag must be used, not the logging command)\n%s", code, out)
	}
	// After a swap the slot serves the old release: no comment, no slotUrl
	// (issue 13, item 1).
	if code, out := runOnce("https://shop-staging-3.azurewebsites.net", true); code != 0 || !strings.Contains(out, "variable=slotUrl;]\n") {
		t.Fatalf("third run: exit %d, or slotUrl not empty after a swap\n%s", code, out)
	}
	if len(fake.tags) != 3 || fake.tags[0] != "djdeploy-r1" {
		t.Errorf("tags %v", fake.tags)
	}
	if fake.created != 1 || fake.updated != 1 || len(fake.threads) != 1 {
		t.Errorf("threads created %d, updated %d, kept %d: want one, then updated", fake.created, fake.updated, len(fake.threads))
	}
	for _, c := range fake.threads {
		if !strings.Contains(c, ci.PreviewMarker) || !strings.Contains(c, "https://shop-staging-2.azurewebsites.net") || !strings.Contains(c, "/shop/_build/results?buildId=77") {
			t.Errorf("thread comment:\n%s", c)
		}
	}
	if fake.options == 0 || fake.areasGet == 0 {
		t.Errorf("location discovery not exercised: OPTIONS %d, ResourceAreas %d", fake.options, fake.areasGet)
	}
}

func TestOutputName(t *testing.T) {
	for in, want := range map[string]string{"url": "url", "slot-url": "slotUrl", "static-uploaded": "staticUploaded"} {
		if got := OutputName(in); got != want {
			t.Errorf("OutputName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestIssuesNameRepoRelativeFiles: a project in a subfolder of the
// repository (app1/) gets its findings logged on app1/mysite/settings.py,
// relative to Build.SourcesDirectory as the agent resolves sourcepath.
func TestIssuesNameRepoRelativeFiles(t *testing.T) {
	h := newHarness(t)
	h.env["DJDEPLOY_PROJECT"] = filepath.Join(h.dir, "app1")
	code := h.run(t, func(ctx context.Context, v *settings.Values, rep progress.Reporter) (*report.Release, error) {
		r, err := sampleRun(ctx, v, rep)
		r.Checks = []report.Check{{ID: "security.W018", Level: "error", Message: "DEBUG is on.", File: "mysite/settings.py"}}
		return r, err
	})
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stdout.String())
	}
	if want := "##vso[task.logissue code=security.W018;sourcepath=app1/mysite/settings.py;type=error;]security.W018: DEBUG is on."; !strings.Contains(h.stdout.String(), want) {
		t.Errorf("log lacks %q:\n%s", want, h.stdout.String())
	}
}
