package faults

// TestFaultMatrix releases the example app through the emulator and
// Azurite with one fault (or one kind of fault at several steps) injected
// per release, and checks the promise of a release after each:
//
//   - production serves a complete release, old or new: its page answers,
//     and every static file it links (and every url() in that css) answers
//     200 through the CDN;
//   - every file named in the manifests of the releases production and the
//     slot run is still in the container;
//   - a release that failed names the step and the cause (report and
//     stderr), and a re-run with the fault cleared completes, after which
//     production serves the new release;
//   - transient faults (a few 429s, 503s, drops, slow answers) are absorbed
//     by retries: the release succeeds and every injected fault fired.
//
// Transient faults of one kind at different steps share a release (each
// row's fault must fire, or the row fails as untried); persistent faults
// get a release each, plus the re-run.
//
// `make test` runs the quick matrix; DJDEPLOY_FAULT_MATRIX=full (set by
// `make bench`) runs every row, including the runner killed mid-release,
// whose re-run waits out the dead runner's lock lease (up to 60 s).

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
)

// row is one line of the matrix: a fault at a step.
type row struct {
	step, fault string
	tried       bool
	survived    bool
	how         string // absorbed, failed cleanly, ...
	lost        string // why it counts as lost
}

type matrix struct {
	rows []*row
}

func (m *matrix) add(step, fault string) *row {
	r := &row{step: step, fault: fault}
	m.rows = append(m.rows, r)
	return r
}

func (m *matrix) table() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tFAULT\tTRIED\tSURVIVED\tLOST\tHOW")
	order := map[string]int{}
	for i, s := range []string{"lock", "static-sync", "deploy", "warm-up", "swap", "purge", "prune", "runner"} {
		order[s] = i
	}
	rows := append([]*row(nil), m.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return order[rows[i].step] < order[rows[j].step] })
	var tried, survived, lost int
	for _, r := range rows {
		t, s, l := 0, 0, 0
		if r.tried {
			t = 1
			if r.survived {
				s = 1
			} else {
				l = 1
			}
		}
		tried, survived, lost = tried+t, survived+s, lost+l
		how := r.how
		if r.lost != "" {
			how = "LOST: " + r.lost
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\n", r.step, r.fault, t, s, l, how)
	}
	fmt.Fprintf(tw, "TOTAL\t\t%d\t%d\t%d\t\n", tried, survived, lost)
	tw.Flush()
	return b.String()
}

// fault is one row of a batch: what to inject, and how to tell it fired.
type fault struct {
	step, name string
	arm        *emulator.Fault // an emulator fault, or
	blob       *Rule           // a Blob proxy rule
}

// cellTag numbers cells, so each release has its own id.
var cellTag atomic.Int64

func TestFaultMatrix(t *testing.T) {
	full := os.Getenv("DJDEPLOY_FAULT_MATRIX") == "full"
	w := newWorld(t)
	ctx := context.Background()
	m := &matrix{}
	defer func() {
		tab := m.table()
		fmt.Printf("\nFault matrix (%s):\n%s\n", map[bool]string{true: "full", false: "quick; DJDEPLOY_FAULT_MATRIX=full for every row"}[full], tab)
		if p := os.Getenv("DJDEPLOY_FAULT_MATRIX_TABLE"); p != "" {
			_ = os.MkdirAll(filepath.Dir(p), 0o755)
			_ = os.WriteFile(p, []byte(tab), 0o644)
		}
		for _, r := range m.rows {
			if r.tried && !r.survived {
				t.Errorf("lost: %s × %s: %s", r.step, r.fault, r.lost)
			}
		}
	}()

	// The first release gives production something to keep serving.
	w.vary(t, "base", 0)
	if r := w.release(ctx, nil); r.code != 0 {
		t.Fatalf("first release failed: %s", r)
	}
	if id, probs := w.serving(); id == "" || len(probs) > 0 {
		t.Fatalf("production after the first release: %q %v", id, probs)
	}

	ra := func(f emulator.Fault) *emulator.Fault {
		if f.Status != 0 && f.Status != 409 {
			f.RetryAfter = 1
		}
		return &f
	}
	putSettings := func(f emulator.Fault) *emulator.Fault {
		f.Method, f.Path, f.Host = "PUT", "*/config/appsettings", "arm"
		return ra(f)
	}
	publish := func(f emulator.Fault) *emulator.Fault {
		f.Method, f.Path, f.Host = "POST", "/api/publish", "scm"
		return ra(f)
	}
	health := func(f emulator.Fault) *emulator.Fault {
		f.Method, f.Path, f.Host = "GET", "/healthz", "site"
		return ra(f)
	}
	swapF := func(f emulator.Fault) *emulator.Fault {
		f.Method, f.Path, f.Host = "POST", "*/slotsswap", "arm"
		return ra(f)
	}
	purgeF := func(f emulator.Fault) *emulator.Fault {
		f.Method, f.Path, f.Host = "POST", "*/purge", "arm"
		return ra(f)
	}
	lease := func(r Rule) *Rule { r.Method, r.Query = "PUT", "comp=lease"; return &r }
	upload := func(r Rule) *Rule { r.Method, r.PathContains = "PUT", "/pages/cells/"; return &r }
	manifest := func(r Rule) *Rule { r.Method, r.PathContains = "PUT", "/.djdeploy/releases/"; return &r }
	list := func(r Rule) *Rule { r.Method, r.Query = "GET", "comp=list"; return &r }

	// ---- transient faults: absorbed by retries
	busy := Rule{Status: 503, Code: "ServerBusy", RetryAfter: 1}
	timedOut := Rule{Status: 500, Code: "OperationTimedOut"}
	batches := []struct {
		name  string
		quick bool
		rows  []fault
	}{
		{"ARM 429 + Retry-After, then 503", true, []fault{
			// Two faults on one route fire in turn: 429, then 503.
			{"deploy", "ARM 429 + Retry-After (app settings PUT)", putSettings(emulator.Fault{Status: 429}), nil},
			{"deploy", "ARM 503 (app settings PUT)", putSettings(emulator.Fault{Status: 503}), nil},
			{"deploy", "Kudu 429 + Retry-After (publish)", publish(emulator.Fault{Status: 429}), nil},
			{"deploy", "ARM 503 (deployment status poll)", ra(emulator.Fault{Method: "GET", Path: "*/deploymentStatus/*", Status: 503, Host: "arm"}), nil},
			{"warm-up", "app 503 (slot health check), twice", health(emulator.Fault{Status: 503, Count: 2}), nil},
			{"swap", "ARM 429 + Retry-After (slotsswap)", swapF(emulator.Fault{Status: 429}), nil},
			{"swap", "ARM 503 (slotsswap)", swapF(emulator.Fault{Status: 503}), nil},
			{"purge", "ARM 429 + Retry-After (purge)", purgeF(emulator.Fault{Status: 429}), nil},
			{"purge", "ARM 503 (purge)", purgeF(emulator.Fault{Status: 503}), nil},
		}},
		{"ARM and Kudu 500", false, []fault{
			{"deploy", "ARM 500 (app settings PUT)", putSettings(emulator.Fault{Status: 500}), nil},
			{"deploy", "Kudu 500 (publish)", publish(emulator.Fault{Status: 500}), nil},
			{"swap", "ARM 500 (slotsswap)", swapF(emulator.Fault{Status: 500}), nil},
			{"purge", "ARM 500 (purge)", purgeF(emulator.Fault{Status: 500}), nil},
		}},
		{"Kudu 409: another deployment in progress", false, []fault{
			{"deploy", "Kudu 409 (publish)", publish(emulator.Fault{Status: 409}), nil},
		}},
		{"dropped connections", false, []fault{
			{"deploy", "dropped connection (app settings PUT)", putSettings(emulator.Fault{Drop: true}), nil},
			{"deploy", "dropped connection (Kudu publish)", publish(emulator.Fault{Drop: true}), nil},
			{"warm-up", "dropped connection (slot health check)", health(emulator.Fault{Drop: true}), nil},
			{"swap", "dropped connection (slotsswap)", swapF(emulator.Fault{Drop: true}), nil},
			{"purge", "dropped connection (purge)", purgeF(emulator.Fault{Drop: true}), nil},
			{"lock", "dropped connection (lease)", nil, lease(Rule{Drop: true})},
			{"prune", "dropped connection (list)", nil, list(Rule{Drop: true})},
		}},
		{"slow answers", false, []fault{
			{"deploy", "slow answer, 3 s (app settings PUT)", putSettings(emulator.Fault{Delay: 3 * time.Second}), nil},
			{"deploy", "slow answer, 3 s (Kudu publish)", publish(emulator.Fault{Delay: 3 * time.Second}), nil},
			{"warm-up", "slow answer, 3 s (slot health check)", health(emulator.Fault{Delay: 3 * time.Second}), nil},
			{"swap", "slow answer, 3 s (slotsswap)", swapF(emulator.Fault{Delay: 3 * time.Second}), nil},
			{"purge", "slow answer, 3 s (purge)", purgeF(emulator.Fault{Delay: 3 * time.Second}), nil},
			{"lock", "slow answer, 3 s (lease)", nil, lease(Rule{Delay: 3 * time.Second})},
			{"static-sync", "slow answer, 3 s (upload)", nil, upload(Rule{Delay: 3 * time.Second})},
		}},
		{"Blob ServerBusy, OperationTimedOut, drop", true, []fault{
			{"lock", "Blob 503 ServerBusy (lease), twice", nil, lease(withCount(busy, 2))},
			{"lock", "Blob 500 OperationTimedOut (lease)", nil, lease(withCount(timedOut, 1))},
			{"static-sync", "Blob 503 ServerBusy (upload), 3 times", nil, upload(withCount(busy, 3))},
			{"static-sync", "Blob 500 OperationTimedOut (upload), twice", nil, upload(withCount(timedOut, 2))},
			{"static-sync", "dropped connection (upload)", nil, upload(Rule{Drop: true})},
			{"static-sync", "Blob 503 ServerBusy (manifest write)", nil, manifest(withCount(busy, 1))},
			{"static-sync", "Blob 500 OperationTimedOut (manifest write)", nil, manifest(withCount(timedOut, 1))},
			{"prune", "Blob 503 ServerBusy (list)", nil, list(withCount(busy, 1))},
			{"prune", "Blob 500 OperationTimedOut (list)", nil, list(withCount(timedOut, 1))},
		}},
	}
	for _, b := range batches {
		if !full && !b.quick {
			continue
		}
		t.Run("absorbed/"+b.name, func(t *testing.T) {
			var rows []*row
			var rules []*Rule
			for _, f := range b.rows {
				r := m.add(f.step, f.name)
				rows = append(rows, r)
				if f.arm != nil {
					w.emu.Faults().Add(*f.arm)
				} else {
					f.blob.Count = orOne(f.blob.Count)
					rules = append(rules, f.blob)
					w.proxy.Add(*f.blob)
				}
			}
			w.absorbed(t, rows, b.rows)
		})
	}

	// Azurite killed in the middle of the upload and back 1.5 s later.
	t.Run("absorbed/Azurite restarted mid-sync", func(t *testing.T) {
		r := m.add("static-sync", "Azurite killed and restarted mid-sync")
		done := w.outage("/pages/cells/f01", 1500*time.Millisecond)
		w.cell(t, r, cellOpts{extraFiles: 40, expect: ""})
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("restarting azurite: %v", err)
			}
		case <-time.After(time.Minute):
			r.survived, r.lost = false, "Azurite was never killed: the upload did not reach the trigger file"
		}
	})

	// ---- persistent faults: the release fails at the step, cleanly
	type solo struct {
		step, fault string
		quick       bool
		expect      string // the cause the error must name
		opts        cellOpts
		inject      func(t *testing.T)
	}
	solos := []solo{
		{"lock", "Blob 503 ServerBusy on every lease request", false, "ServerBusy", cellOpts{}, func(t *testing.T) {
			w.proxy.Add(*lease(withCount(busy, -1)))
		}},
		{"static-sync", "Blob 503 ServerBusy on every upload", true, "ServerBusy", cellOpts{}, func(t *testing.T) {
			w.proxy.Add(*upload(withCount(busy, -1)))
		}},
		{"static-sync", "Blob 500 OperationTimedOut on every upload", false, "OperationTimedOut", cellOpts{}, func(t *testing.T) {
			w.proxy.Add(*upload(withCount(timedOut, -1)))
		}},
		{"static-sync", "Azurite killed mid-sync, down until the release ends", false, "", cellOpts{extraFiles: 20, restartAzurite: true}, func(t *testing.T) {
			w.outage("/pages/cells/f01", -1)
		}},
		{"deploy", "ARM 500 on every app settings PUT", false, "500", cellOpts{}, func(t *testing.T) {
			w.emu.Faults().Add(*putSettings(emulator.Fault{Status: 500, Count: -1}))
		}},
		{"deploy", "ARM 409 on the app settings PUT", false, "409", cellOpts{}, func(t *testing.T) {
			w.emu.Faults().Add(*putSettings(emulator.Fault{Status: 409}))
		}},
		{"deploy", "app fails to build (BuildFailed)", false, "BuildFailed", cellOpts{}, func(t *testing.T) {
			w.emu.FailNextDeployment(appName, slotName, emulator.AtBuild)
		}},
		{"deploy", "app fails to start (RuntimeFailed)", true, "RuntimeFailed", cellOpts{}, func(t *testing.T) {
			w.emu.FailNextDeployment(appName, slotName, emulator.AtRuntime)
		}},
		{"warm-up", "slot health check 503 until the timeout", false, "503", cellOpts{args: []string{"--warmup-timeout", "5s"}}, func(t *testing.T) {
			w.emu.Faults().Add(*health(emulator.Fault{Status: 503, Count: -1}))
		}},
		{"swap", "ARM 503 on every slotsswap", false, "503", cellOpts{}, func(t *testing.T) {
			w.emu.Faults().Add(*swapF(emulator.Fault{Status: 503, Count: -1}))
		}},
		{"swap", "ARM 409 on the slotsswap", false, "409", cellOpts{}, func(t *testing.T) {
			w.emu.Faults().Add(*swapF(emulator.Fault{Status: 409}))
		}},
		{"swap", "health check fails after the swap (swapped back)", true, "swapped back", cellOpts{args: []string{"--verify-timeout", "5s"}, prodSick: true}, nil},
		{"purge", "ARM 500 on every purge", false, "500", cellOpts{}, func(t *testing.T) {
			w.emu.Faults().Add(*purgeF(emulator.Fault{Status: 500, Count: -1}))
		}},
		{"prune", "Blob 503 ServerBusy on every delete", false, "ServerBusy", cellOpts{args: []string{"--static-grace", "0s", "--static-keep", "1"}, orphan: true}, func(t *testing.T) {
			w.proxy.Add(Rule{Match: func(r *http.Request) bool {
				return r.Method == http.MethodDelete || strings.Contains(r.URL.RawQuery, "comp=batch")
			}, Status: 503, Code: "ServerBusy", RetryAfter: 1, Count: -1})
		}},
	}
	for _, s := range solos {
		if !full && !s.quick {
			continue
		}
		t.Run("fails/"+s.step+"/"+s.fault, func(t *testing.T) {
			r := m.add(s.step, s.fault)
			if s.inject != nil {
				s.inject(t)
			}
			o := s.opts
			o.expect, o.step = s.expect, s.step
			w.cell(t, r, o)
		})
	}

	// ---- the runner killed mid-release, then re-run
	if full {
		t.Run("killed/during static-sync", func(t *testing.T) {
			r := m.add("runner", "SIGKILL during static-sync, then re-run")
			w.killed(t, r, func(trigger chan<- struct{}) {
				// vary names the files f000.css, f001.css, ...: the
				// sixth file's upload is the kill point.
				w.proxy.Add(Rule{Method: "PUT", PathContains: "/pages/cells/f005", Delay: 200 * time.Millisecond, Count: -1,
					Before: func(*http.Request) { nonBlocking(trigger) }})
			}, 30)
		})
		t.Run("killed/during deploy", func(t *testing.T) {
			r := m.add("runner", "SIGKILL during deploy, then re-run")
			w.killed(t, r, func(trigger chan<- struct{}) {
				before := w.emu.Requests("POST", "/api/publish")
				go func() {
					for end := time.Now().Add(3 * time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
						if w.emu.Requests("POST", "/api/publish") > before {
							nonBlocking(trigger)
							return
						}
					}
				}()
			}, 0)
		})
	}
}

func withCount(r Rule, n int) Rule { r.Count = n; return r }

func orOne(n int) int {
	if n == 0 {
		return 1
	}
	return n
}

func nonBlocking(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// reset clears every fault the world can hold.
func (w *world) reset() {
	w.emu.Faults().Clear()
	w.proxy.Clear()
	w.emu.FailNextDeployment(appName, slotName, emulator.NoFailure)
}

// invariants are the checks after every release, failed or not: production
// serves a complete release (one of ids) and the retained releases' files
// are all there. It returns what is wrong.
func (w *world) invariants(ctx context.Context, ids ...string) []string {
	id, probs := w.serving()
	if id != "" {
		ok := false
		for _, want := range ids {
			ok = ok || id == want
		}
		if !ok {
			probs = append(probs, fmt.Sprintf("production serves release %s, want one of %v", id, ids))
		}
	}
	return append(probs, w.retainedFilesPresent(ctx)...)
}

// absorbed runs one release with transient faults installed: it must
// succeed, every fault must have fired, and production must serve it.
func (w *world) absorbed(t *testing.T, rows []*row, faults []fault) {
	ctx := context.Background()
	defer w.reset()
	w.vary(t, fmt.Sprintf("absorbed-%d", cellTag.Add(1)), 3)
	old, _ := w.serving()
	for _, r := range rows {
		r.tried = true
	}
	res := w.release(ctx, nil)
	t.Logf("release: exit %d", res.code)
	pending := w.emu.Faults().Pending()
	w.proxy.mu.Lock()
	var pendingRules []Rule
	for _, ar := range w.proxy.rules {
		pendingRules = append(pendingRules, ar.Rule)
	}
	w.proxy.mu.Unlock()
	var newID string
	if res.rep != nil {
		newID = res.rep.ReleaseID
	}
	probs := w.invariants(ctx, old, newID)
	for i, r := range rows {
		f := faults[i]
		fired := true
		if f.arm != nil {
			for _, p := range pending {
				if p.Path == f.arm.Path && p.Method == f.arm.Method && p.Host == f.arm.Host {
					fired = false
				}
			}
		} else {
			for _, p := range pendingRules {
				if p.PathContains == f.blob.PathContains && p.Query == f.blob.Query && p.Method == f.blob.Method {
					fired = false
				}
			}
		}
		switch {
		case res.code != 0:
			if res.rep != nil && res.rep.FailedStep == r.step {
				r.lost = "not absorbed: " + firstLine(res.rep.Error)
			} else if fired {
				r.survived, r.how = true, "absorbed (the release failed elsewhere)"
			} else {
				r.tried = false
				r.how = "not reached"
			}
		case !fired:
			r.lost = "the fault never fired, so the row proves nothing"
		case len(probs) > 0:
			r.lost = strings.Join(probs, "; ")
		default:
			r.survived, r.how = true, "absorbed by retries"
		}
	}
	if res.code != 0 {
		t.Errorf("release with transient faults failed: %s", res)
		w.reset()
		if rr := w.release(ctx, nil); rr.code != 0 {
			t.Fatalf("re-run after the failed batch failed too: %s", rr)
		}
		return
	}
	if id, _ := w.serving(); id != newID {
		for _, r := range rows {
			if r.survived {
				r.survived, r.lost = false, fmt.Sprintf("release succeeded but production serves %s, not %s", id, newID)
			}
		}
	}
	for _, p := range probs {
		t.Error(p)
	}
}

type cellOpts struct {
	step           string // the step the release must fail at ("" = must succeed)
	expect         string // what the error must name as the cause
	args           []string
	extraFiles     int
	restartAzurite bool // the fault stops Azurite; start it again before checking
	prodSick       bool // new code fails its health check on production's host only
	orphan         bool // put an unreferenced old file in the container for prune
}

// cell runs one release with a fault, checks the invariants and the error,
// then clears the fault and checks that a re-run completes.
func (w *world) cell(t *testing.T, r *row, o cellOpts) {
	ctx := context.Background()
	defer w.reset()
	w.vary(t, fmt.Sprintf("cell-%d", cellTag.Add(1)), o.extraFiles)
	restoreViews := func() {}
	if o.prodSick {
		restoreViews = w.sickOnProduction(t)
	}
	if o.orphan {
		if _, err := w.blob.UploadBuffer(ctx, w.cont, w.prefix+"pages/cells/orphan-old.css", []byte(".orphan{}"), nil); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := w.serving()
	r.tried = true
	res := w.release(ctx, nil, o.args...)
	if o.restartAzurite {
		if err := w.startAzurite(); err != nil {
			t.Fatalf("restarting azurite: %v", err)
		}
	}
	w.reset()
	restoreViews()
	var lost []string
	var newID string
	if res.rep != nil {
		newID = res.rep.ReleaseID
	}
	lost = append(lost, w.invariants(ctx, old, newID)...)
	lost = append(lost, failureProblems(res, o.step, o.expect)...)
	how := "absorbed by retries"
	if o.step != "" {
		how = "failed cleanly at " + o.step
		if res.code != 0 {
			// The re-run, with the fault gone, completes and goes live.
			rr := w.release(ctx, nil, o.args...)
			switch {
			case rr.code != 0:
				lost = append(lost, "re-run failed: "+firstLine(errorLine(rr.stderr)))
				t.Logf("re-run: %s", rr)
			case rr.rep == nil:
				lost = append(lost, "re-run printed no report")
			case o.prodSick && rr.rep.ReleaseID == newID:
				// With prodSick the re-run ships the fixed code: a new id.
				lost = append(lost, "re-run shipped the code that failed again")
			case !o.prodSick && newID != "" && rr.rep.ReleaseID != newID:
				// newID is "" when the release failed before its build.
				lost = append(lost, "re-run released something else")
			default:
				lost = append(lost, w.invariants(ctx, rr.rep.ReleaseID)...)
				how += "; re-run completed"
			}
		}
	}
	if len(lost) > 0 {
		r.lost = strings.Join(lost, "; ")
		t.Errorf("%s × %s: %s\n%s", r.step, r.fault, r.lost, res)
		return
	}
	if res.code != 0 {
		t.Logf("%s failed as expected: %s", o.step, errorLine(res.stderr))
	}
	r.survived, r.how = true, how
}

// failureProblems checks a failed release names the step and the cause,
// on stderr and in the report, without Go internals; with step "" the
// release must have succeeded.
func failureProblems(res result, step, cause string) []string {
	if step == "" {
		if res.code != 0 {
			return []string{"not absorbed: " + firstLine(errorLine(res.stderr))}
		}
		return nil
	}
	var p []string
	if res.code != 1 {
		p = append(p, fmt.Sprintf("exit %d, want 1", res.code))
	}
	if res.rep == nil {
		return append(p, "no JSON report")
	}
	if res.rep.Outcome != report.Failed || res.rep.FailedStep != step {
		p = append(p, fmt.Sprintf("report says %s at %q, want failed at %s", res.rep.Outcome, res.rep.FailedStep, step))
	}
	line := errorLine(res.stderr)
	if !strings.HasPrefix(line, "error: "+step+" step: ") {
		p = append(p, fmt.Sprintf("error line %q does not name the %s step", line, step))
	}
	if cause != "" && !strings.Contains(strings.ToLower(line), strings.ToLower(cause)) {
		p = append(p, fmt.Sprintf("error line %q does not name the cause (%s)", line, cause))
	}
	if n := strings.Count(res.stderr, "\nerror: ") + boolInt(strings.HasPrefix(res.stderr, "error: ")); n != 1 {
		p = append(p, fmt.Sprintf("%d error lines", n))
	}
	for _, bad := range []string{"goroutine ", "panic:", ".go:"} {
		if strings.Contains(res.stderr, bad) {
			p = append(p, "stderr shows Go internals ("+bad+")")
		}
	}
	return p
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func errorLine(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "error: ") {
			return l
		}
	}
	return ""
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

const viewsHealthz = `def healthz(request):
    """Warm-up and health probe: no database, no templates, always cheap."""
    return JsonResponse({"status": "ok", "release": release_id()})
`

// sickOnProduction makes the new code's health check fail on production's
// host only: it passes warm-up on the slot and fails verification after
// the swap. It returns the restore function.
func (w *world) sickOnProduction(t *testing.T) func() {
	t.Helper()
	p := filepath.Join(w.dir, "pages/views.py")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(orig), viewsHealthz) {
		t.Fatalf("pages/views.py changed; update viewsHealthz")
	}
	prodHost := strings.TrimPrefix(w.emu.ProductionURL(appName), "http://")
	sick := fmt.Sprintf("def healthz(request):\n    if request.get_host() == %q:\n        return JsonResponse({\"status\": \"broken\"}, status=503)\n    return JsonResponse({\"status\": \"ok\", \"release\": release_id()})\n", prodHost)
	if err := os.WriteFile(p, []byte(strings.Replace(string(orig), viewsHealthz, sick, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return func() { _ = os.WriteFile(p, orig, 0o644) }
}

// killed runs the release as a child process, SIGKILLs it when arm's
// trigger fires, checks production, then re-runs the release in-process
// (it waits for the dead runner's lock lease to expire) and checks that it
// completes.
func (w *world) killed(t *testing.T, r *row, arm func(trigger chan<- struct{}), extraFiles int) {
	ctx := context.Background()
	defer w.reset()
	w.vary(t, fmt.Sprintf("killed-%d", cellTag.Add(1)), extraFiles)
	old, _ := w.serving()
	trigger := make(chan struct{}, 1)
	arm(trigger)
	cmd, _, stderr := w.command(t, ctx)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	r.tried = true
	select {
	case <-trigger:
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-waited
	case err := <-waited:
		r.lost = fmt.Sprintf("the release ended (%v) before the kill point", err)
		t.Errorf("%s\n%s", r.lost, stderr)
		return
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		r.lost = "the kill point was never reached"
		t.Error(r.lost)
		return
	}
	w.reset()
	var lost []string
	lost = append(lost, w.invariants(ctx, old)...)
	rr := w.release(ctx, nil)
	switch {
	case rr.code != 0:
		lost = append(lost, "re-run failed: "+errorLine(rr.stderr))
		t.Logf("re-run: %s", rr)
	case rr.rep == nil:
		lost = append(lost, "re-run printed no report")
	default:
		lost = append(lost, w.invariants(ctx, rr.rep.ReleaseID)...)
	}
	if len(lost) > 0 {
		r.lost = strings.Join(lost, "; ")
		t.Errorf("%s: %s", r.fault, r.lost)
		return
	}
	r.survived, r.how = true, "production untouched; re-run completed"
}
