package harness

// This file's name sorts after runner_test.go on purpose: tests run in file
// order on the shared emulator, and TestRunnerHarness's first release must
// find the static container empty.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/e2e"
)

// prComments is the issue-comments part of the GitHub API, in front of
// fakeGitHub (which keeps the OIDC and deployment endpoints).
type prComments struct {
	mu       sync.Mutex
	comments map[int64]string // id -> body, all on one pull request
	pr       int
	created  int
	edited   int
}

func (c *prComments) handler(t *testing.T, gh *fakeGitHub) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		issue := "/api/v3/repos/" + gh.repo + "/issues/"
		if !strings.HasPrefix(r.URL.Path, issue) {
			gh.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+gh.apiToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		rest := strings.TrimPrefix(r.URL.Path, issue)
		var body struct {
			Body string `json:"body"`
		}
		if r.Method == http.MethodPost || r.Method == http.MethodPatch {
			json.NewDecoder(r.Body).Decode(&body)
		}
		switch {
		case r.Method == http.MethodGet && rest == fmt.Sprintf("%d/comments", c.pr):
			var list []map[string]any
			for id, b := range c.comments {
				list = append(list, map[string]any{"id": id, "body": b})
			}
			json.NewEncoder(w).Encode(list)
		case r.Method == http.MethodPost && rest == fmt.Sprintf("%d/comments", c.pr):
			c.created++
			id := int64(900 + c.created)
			c.comments[id] = body.Body
			w.WriteHeader(http.StatusCreated)
			json.NewEncoder(w).Encode(map[string]any{"id": id, "body": body.Body})
		case r.Method == http.MethodPatch && strings.HasPrefix(rest, "comments/"):
			id, _ := strconv.ParseInt(strings.TrimPrefix(rest, "comments/"), 10, 64)
			if _, ok := c.comments[id]; !ok {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			c.edited++
			c.comments[id] = body.Body
			json.NewEncoder(w).Encode(map[string]any{"id": id, "body": body.Body})
		default:
			t.Errorf("unexpected GitHub API call %s %s", r.Method, r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	})
}

func (c *prComments) only(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.comments) != 1 {
		t.Fatalf("%d comments on the pull request, want exactly one: %v", len(c.comments), c.comments)
	}
	for _, b := range c.comments {
		return b
	}
	return ""
}

var commentURL = regexp.MustCompile(`<(http[^>]+)>`)

// A pull request's preview through the action's entrypoint (djdeploy ci
// github, command preview) against the emulator: its own slot pr-<number>,
// a comment whose URL answers with the pull request's release (read over
// HTTP, as a reviewer would), the same comment updated on the next push,
// production and the release slot untouched, and the slot deleted when the
// pull request closes.
func TestPreviewOnItsOwnSlot(t *testing.T) {
	s := fixture(t)
	gh := newFakeGitHub(t, "octo/shop")
	cm := &prComments{comments: map[int64]string{}, pr: 31}
	front := httptest.NewServer(cm.handler(t, gh))
	t.Cleanup(front.Close)
	gh.srv = front // apiURL and idTokenURL now point at the front
	hc := &http.Client{Timeout: 30 * time.Second}

	answer := func(url string) string {
		code, _, body, err := e2e.Get(hc, url)
		if err != nil || code != 200 {
			return fmt.Sprintf("(%d %v)", code, err)
		}
		return body
	}
	slotURL := func(slot string) string { return s.emu.SlotURL(app, slot) + "/healthz" }
	prodBefore, stagingBefore := answer(s.emu.ProductionURL(app)+"/healthz"), answer(slotURL("staging"))

	preview := func(t *testing.T, ws, action string) ghRun {
		t.Helper()
		in := releaseSettings(s)
		delete(in, "slot")
		in["command"] = "preview"
		in["credential"] = "github-oidc"
		in["github-token"] = gh.apiToken
		event := writeFile(t, filepath.Join(t.TempDir(), "event.json"),
			fmt.Sprintf(`{"action":%q,"number":31,"pull_request":{"number":31},"repository":{"full_name":"octo/shop"}}`, action))
		return githubStep(t, s, gh, ws, in, map[string]string{"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": event,
			"GITHUB_REF": "refs/pull/31/merge"})
	}
	check := func(t *testing.T, r ghRun) {
		t.Helper()
		if r.Code != 0 {
			t.Fatalf("djdeploy ci github (preview): %s", r)
		}
		id := r.outputs["release-id"]
		if id == "" || r.outputs["slot-url"] == "" {
			t.Fatalf("outputs release-id %q, slot-url %q", id, r.outputs["slot-url"])
		}
		m := commentURL.FindStringSubmatch(cm.only(t))
		if m == nil || m[1] != r.outputs["slot-url"] {
			t.Fatalf("the comment's URL is not slot-url %s:\n%s", r.outputs["slot-url"], cm.only(t))
		}
		if !strings.Contains(m[1], strings.TrimPrefix(strings.TrimPrefix(s.emu.SlotURL(app, "pr-31"), "https://"), "http://")) {
			t.Errorf("the comment's URL %s is not slot pr-31's (%s)", m[1], s.emu.SlotURL(app, "pr-31"))
		}
		var health struct{ Release string }
		if err := json.Unmarshal([]byte(answer(m[1]+"/healthz")), &health); err != nil || health.Release != id {
			t.Errorf("the comment's URL answers release %q (%v), want the pull request's %s", health.Release, err, id)
		}
		if got := answer(s.emu.ProductionURL(app) + "/healthz"); got != prodBefore {
			t.Errorf("a preview changed production: %s, was %s", got, prodBefore)
		}
		if got := answer(slotURL("staging")); got != stagingBefore {
			t.Errorf("a preview changed the release slot: %s, was %s", got, stagingBefore)
		}
		for _, step := range []string{"swap", "purge", "prune"} {
			if !regexp.MustCompile(`\| ` + step + ` \| [^|]*skipped`).MatchString(r.summary) {
				t.Errorf("step %s is not a skip in the summary:\n%s", step, r.summary)
			}
		}
	}

	ws := e2e.Project(t, "workspace")
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello from pull request 31")
	first := preview(t, ws, "opened")
	check(t, first)
	if cm.created != 1 {
		t.Errorf("comments created %d, want 1", cm.created)
	}

	// The next push: a new release on the same slot, the same comment.
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from pull request 31", "Hello again from pull request 31")
	second := preview(t, ws, "synchronize")
	check(t, second)
	if second.outputs["release-id"] == first.outputs["release-id"] {
		t.Errorf("the second push has the first's release id %s", first.outputs["release-id"])
	}
	if cm.created != 1 || cm.edited != 1 {
		t.Errorf("comments created %d, edited %d: want the one comment updated", cm.created, cm.edited)
	}
	if !strings.Contains(cm.only(t), second.outputs["release-id"]) {
		t.Errorf("the comment does not name the second release %s:\n%s", second.outputs["release-id"], cm.only(t))
	}

	// The pull request closes: the slot goes, the comment says so.
	closed := preview(t, ws, "closed")
	if closed.Code != 0 {
		t.Fatalf("preview on close: %s", closed)
	}
	if code, _, body, err := e2e.Get(hc, second.outputs["slot-url"]+"/healthz"); err == nil && code == http.StatusOK {
		t.Errorf("the deleted preview slot still answers %d: %s", code, body)
	}
	if body := cm.only(t); !strings.Contains(body, "was deleted") || commentURL.MatchString(body) {
		t.Errorf("after the close, the comment still links the slot:\n%s", body)
	}

	// Bad input: one message, exit 2, nothing created.
	in := releaseSettings(s)
	delete(in, "slot")
	in["command"], in["pr"], in["credential"] = "preview", "forty-two", "github-oidc"
	bad := githubStep(t, s, gh, ws, in, nil)
	if bad.Code != 2 || !strings.Contains(bad.Stdout, "not a positive whole number") {
		t.Errorf("pr forty-two: %s", bad)
	}
}

// threadURL is the slot URL in a preview thread: the slot's link, not the
// run's (which is in a markdown link's parentheses).
var threadURL = regexp.MustCompile(`: (https?://\S+)\n`)

// The same preview through the Azure Pipelines step (djdeploy ci
// azure-pipelines, command preview, as pipelines/steps/djdeploy.yml runs it)
// on a pull-request build: its own slot pr-<number>, a pull request thread
// (Azure Repos' REST API through azure-devops-go-api) whose URL answers with
// the pull request's release, the same thread updated on the next build,
// production and the release slot untouched, and with previewDelete the
// slot deleted and the thread saying so.
func TestPipelinesPreviewOnItsOwnSlot(t *testing.T) {
	s := fixture(t)
	ado := newFakeADO(t)
	hc := &http.Client{Timeout: 30 * time.Second}
	answer := func(url string) string {
		code, _, body, err := e2e.Get(hc, url)
		if err != nil || code != 200 {
			return fmt.Sprintf("(%d %v)", code, err)
		}
		return body
	}
	prodBefore, stagingBefore := answer(s.emu.ProductionURL(app)+"/healthz"), answer(s.emu.SlotURL(app, "staging")+"/healthz")
	slot := fmt.Sprintf("pr-%d", ado.pr)

	preview := func(t *testing.T, ws string, del bool) adoRun {
		t.Helper()
		set := releaseSettings(s)
		delete(set, "slot")
		set["command"] = "preview"
		set["credential"] = "azure-pipelines"
		if del {
			set["preview-delete"] = "true"
		}
		params := pipelineParams(t, set)
		params["serviceConnection"] = ado.conn
		return pipelineStep(t, s, ado, ws, params, map[string]string{
			"BUILD_REASON": "PullRequest", "BUILD_REPOSITORY_ID": ado.repo,
			"SYSTEM_PULLREQUEST_PULLREQUESTID": fmt.Sprint(ado.pr), "BUILD_SOURCEBRANCH": fmt.Sprintf("refs/pull/%d/merge", ado.pr),
		})
	}
	thread := func(t *testing.T) string {
		t.Helper()
		ado.mu.Lock()
		defer ado.mu.Unlock()
		if len(ado.threads) != 1 {
			t.Fatalf("%d djdeploy threads on the pull request, want exactly one: %v", len(ado.threads), ado.threads)
		}
		for _, c := range ado.threads {
			return c
		}
		return ""
	}
	var lastSlotURL string
	check := func(t *testing.T, r adoRun) string {
		t.Helper()
		if r.Code != 0 {
			t.Fatalf("djdeploy ci azure-pipelines (preview): %s", r)
		}
		id, slotURL := r.outputs["releaseId"], r.outputs["slotUrl"]
		if id == "" || slotURL == "" {
			t.Fatalf("output variables releaseId %q, slotUrl %q:\n%s", id, slotURL, r.Stdout)
		}
		lastSlotURL = slotURL
		if !strings.Contains(slotURL, strings.TrimPrefix(strings.TrimPrefix(s.emu.SlotURL(app, slot), "https://"), "http://")) {
			t.Errorf("slotUrl %s is not slot %s's (%s)", slotURL, slot, s.emu.SlotURL(app, slot))
		}
		body := thread(t)
		m := threadURL.FindStringSubmatch(body)
		if m == nil || m[1] != slotURL {
			t.Fatalf("the thread's URL is not slotUrl %s:\n%s", slotURL, body)
		}
		var health struct{ Release string }
		if err := json.Unmarshal([]byte(answer(m[1]+"/healthz")), &health); err != nil || health.Release != id {
			t.Errorf("the thread's URL answers release %q (%v), want the pull request's %s", health.Release, err, id)
		}
		if got := answer(s.emu.ProductionURL(app) + "/healthz"); got != prodBefore {
			t.Errorf("a preview changed production: %s, was %s", got, prodBefore)
		}
		if got := answer(s.emu.SlotURL(app, "staging") + "/healthz"); got != stagingBefore {
			t.Errorf("a preview changed the release slot: %s, was %s", got, stagingBefore)
		}
		return id
	}

	ws := e2e.Project(t, "workspace")
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Django on App Service", "Hello from Azure Repos pull request")
	first := check(t, preview(t, ws, false))
	e2e.Edit(t, ws, "pages/templates/pages/home.html", "Hello from Azure Repos pull request", "Hello again from Azure Repos")
	second := check(t, preview(t, ws, false))
	if second == first {
		t.Errorf("the second build has the first's release id %s", first)
	}
	if ado.threadsCreated != 1 || ado.threadsUpdated != 1 {
		t.Errorf("threads created %d, updated %d: want the one thread updated", ado.threadsCreated, ado.threadsUpdated)
	}
	if !strings.Contains(thread(t), second) {
		t.Errorf("the thread does not name the second release %s:\n%s", second, thread(t))
	}

	// The pull request is done: previewDelete removes the slot.
	if r := preview(t, ws, true); r.Code != 0 {
		t.Fatalf("preview with previewDelete: %s", r)
	}
	if code, _, body, err := e2e.Get(hc, lastSlotURL+"/healthz"); err == nil && code == http.StatusOK {
		t.Errorf("the deleted preview slot still answers %d: %s", code, body)
	}
	if body := thread(t); !strings.Contains(body, "was deleted") || strings.Contains(body, lastSlotURL) {
		t.Errorf("after the delete, the thread still links the slot:\n%s", body)
	}
}
