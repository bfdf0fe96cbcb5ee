//go:build bench

package faults

// Load under faults (issue 9), run by `make bench`, never by `make test`:
//
//   - TestBenchStaticSyncLoad: `djdeploy static sync` of 50,000 small files
//     with 200 uploads at once, through BlobProxy answering 503 ServerBusy
//     to 5% of requests: every blob is there with the local MD5, and the
//     wall time, the requests by outcome and the child's peak RSS are
//     printed.
//   - TestBenchPurgeLoad: 50 goroutines × 10 purges of 100 paths against
//     the emulator's Front Door endpoint, with 10% of the purge POSTs
//     answered 429 + Retry-After: every purge completes and the emulator
//     received exactly what was sent.
//   - TestBenchConcurrentReleases: three `djdeploy release` processes at
//     once on one emulator: one holds the lock at a time, each completes in
//     turn (or refuses naming the holder), and production serves one
//     complete release throughout and at the end.
//
// Numbers are printed, not asserted; the one bound asserted is memory
// (DJDEPLOY_BENCH_MAX_RSS_MB, default 512), as a regression guard.

import (
	"bytes"
	"context"
	"crypto/md5"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/cdn"
	"github.com/djdeploy/djdeploy/internal/e2e"
	"github.com/djdeploy/djdeploy/internal/emulator"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func envIntOr(k string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(k), &n); err == nil && n > 0 {
		return n
	}
	return def
}

// buildBinary builds cmd/djdeploy into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "djdeploy")
	out, err := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/djdeploy").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func envList(m map[string]string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	return env
}

func printTable(t *testing.T, title string, rows [][2]string) {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	tw.Flush()
	fmt.Printf("\n%s:\n%s\n", title, b.String())
}

func outcomeRows(o map[string]int64) [][2]string {
	keys := make([]string, 0, len(o))
	for k := range o {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var rows [][2]string
	for _, k := range keys {
		rows = append(rows, [2]string{"  requests " + k, fmt.Sprint(o[k])})
	}
	return rows
}

// makeSmallTree writes n files of 100-2000 bytes in about n/170 folders
// (a few hundred for 50,000) and returns their MD5s by slash path.
func makeSmallTree(t *testing.T, dir string, n int) (map[string][md5.Size]byte, int64) {
	t.Helper()
	r := rand.New(rand.NewPCG(9, 9))
	folders := max(1, n/170)
	exts := []string{".css", ".js", ".svg", ".txt", ".json"}
	sums := make(map[string][md5.Size]byte, n)
	var total int64
	buf := make([]byte, 2000)
	for i := range n {
		rel := fmt.Sprintf("app%02d/dir%03d/f%05d%s", i%folders%37, i%folders, i, exts[i%len(exts)])
		size := 100 + r.IntN(1901)
		for j := range size {
			buf[j] = "abcdefghijklmnopqrstuvwxyz0123456789{};:.\n "[r.IntN(43)]
		}
		data := append([]byte(fmt.Sprintf("/*%d*/", i)), buf[:size]...)
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[rel] = md5.Sum(data)
		total += int64(len(data))
	}
	return sums, total
}

func TestBenchStaticSyncLoad(t *testing.T) {
	if _, err := azurite.Find(); err != nil {
		testenv.Missing(t, "azurite", err.Error())
	}
	files := envIntOr("DJDEPLOY_BENCH_LOAD_FILES", 50000)
	conc := envIntOr("DJDEPLOY_BENCH_LOAD_CONCURRENCY", 200)
	maxRSS := int64(envIntOr("DJDEPLOY_BENCH_MAX_RSS_MB", 512))
	ctx := context.Background()

	az, err := azurite.Start(ctx, azurite.Options{InMemory: true})
	if err != nil {
		t.Fatalf("starting azurite: %v", err)
	}
	t.Cleanup(func() { _ = az.Stop() })
	proxy, err := NewBlobProxy(az.BlobEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	bin := buildBinary(t)

	src := filepath.Join(t.TempDir(), "static")
	genStart := time.Now()
	sums, nbytes := makeSmallTree(t, src, files)
	t.Logf("generated %d files (%d bytes) in %s", len(sums), nbytes, time.Since(genStart).Round(time.Millisecond))

	// Blob Storage's throttling answer, without Retry-After (Azure seldom
	// sends one with ServerBusy): the SDK's backoff applies.
	proxy.Add(Rule{Share: 0.05, Count: -1, Status: 503, Code: "ServerBusy"})
	const container = "loadstatic"
	cmd := exec.Command(bin, "static", "sync", "--source", src, "--static-container", container,
		"--static-concurrency", fmt.Sprint(conc), "--json")
	cmd.Env = envList(map[string]string{"AZURE_STORAGE_CONNECTION_STRING": proxy.ConnectionString(az.ConnectionString())})
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	runErr := cmd.Run()
	wall := time.Since(start)
	if runErr != nil {
		t.Fatalf("static sync: %v\n--- stderr:\n%s", runErr, tail(errb.String(), 30))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	rssMB := float64(ru.Maxrss) / 1024 // Linux: kilobytes
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	outcomes := proxy.Outcomes()
	proxy.Clear()

	// Nothing lost: every file is a blob with the local MD5.
	cli, err := azblob.NewClientFromConnectionString(az.ConnectionString(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	pager := cli.NewListBlobsFlatPager(container, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("listing the container: %v", err)
		}
		for _, b := range page.Segment.BlobItems {
			got[*b.Name] = b.Properties.ContentMD5
		}
	}
	var missing, wrong []string
	for name, sum := range sums {
		md, ok := got[name]
		switch {
		case !ok:
			missing = append(missing, name)
		case !bytesEqual(md, sum[:]):
			wrong = append(wrong, name)
		}
	}
	sort.Strings(missing)
	sort.Strings(wrong)
	if len(missing) > 0 {
		t.Errorf("%d of %d files are not in the container, e.g. %v", len(missing), len(sums), missing[:min(5, len(missing))])
	}
	if len(wrong) > 0 {
		t.Errorf("%d blobs have a Content-MD5 other than the local file's, e.g. %v", len(wrong), wrong[:min(5, len(wrong))])
	}
	if outcomes["injected 503 ServerBusy"] == 0 {
		t.Errorf("the proxy never answered ServerBusy: the run proves nothing (outcomes %v)", outcomes)
	}
	if int64(rssMB) > maxRSS {
		t.Errorf("djdeploy's peak RSS was %.0f MB, above the %d MB guard (DJDEPLOY_BENCH_MAX_RSS_MB)", rssMB, maxRSS)
	}
	var res struct {
		Uploaded int `json:"uploaded"`
		Skipped  int `json:"skipped"`
	}
	_, _ = e2e.DecodeResult(out.String(), &res)

	var total int64
	for _, v := range outcomes {
		total += v
	}
	rows := [][2]string{
		{"files (100-2000 B)", fmt.Sprintf("%d in %d folders, %.1f MB", len(sums), countDirs(sums), float64(nbytes)/1e6)},
		{"concurrency", fmt.Sprint(conc)},
		{"injected", "503 ServerBusy to 5% of requests"},
		{"wall time", wall.Round(10 * time.Millisecond).String()},
		{"files/s", fmt.Sprintf("%.0f", float64(len(sums))/wall.Seconds())},
		{"cpu (user+sys)", cpu.Round(10 * time.Millisecond).String()},
		{"peak RSS (djdeploy)", fmt.Sprintf("%.1f MB", rssMB)},
		{"blobs present, MD5 right", fmt.Sprintf("%d/%d (missing %d, wrong MD5 %d)", len(sums)-len(missing)-len(wrong), len(sums), len(missing), len(wrong))},
		{"requests total", fmt.Sprint(total)},
	}
	printTable(t, "Static sync under load", append(rows, outcomeRows(outcomes)...))
}

func bytesEqual(a, b []byte) bool { return bytes.Equal(a, b) }

func countDirs(sums map[string][md5.Size]byte) int {
	d := map[string]bool{}
	for k := range sums {
		d[k[:strings.LastIndexByte(k, '/')]] = true
	}
	return len(d)
}

func TestBenchPurgeLoad(t *testing.T) {
	workers := envIntOr("DJDEPLOY_BENCH_PURGE_WORKERS", 50)
	each := envIntOr("DJDEPLOY_BENCH_PURGE_EACH", 10)
	const perPurge = 100
	ctx := context.Background()
	emu, err := emulator.Start(ctx, emulator.Config{RetryAfter: 1})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(func() { emu.Close() })
	env := emu.Env()
	rg, profile, endpoint := env["DJDEPLOY_RESOURCE_GROUP"], env["DJDEPLOY_CDN_PROFILE"], env["DJDEPLOY_CDN_ENDPOINT"]
	stateOf := func() emulator.EndpointState {
		for _, e := range emu.State().CDN {
			if e.Profile == profile && e.Endpoint == endpoint {
				return e
			}
		}
		t.Fatalf("the emulator has no endpoint %s/%s", profile, endpoint)
		return emulator.EndpointState{}
	}
	if !strings.Contains(stateOf().SKU, "AzureFrontDoor") {
		t.Fatalf("endpoint %s/%s is not Front Door (%s)", profile, endpoint, stateOf().SKU)
	}
	before := len(stateOf().Purges)

	// ARM's throttling, on a share of the purge POSTs, in front of the
	// emulator (whose own faults fire on the first N requests, not a share).
	proxy, err := NewBlobProxy(emu.ARMEndpoint())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Add(Rule{Method: "POST", PathContains: "/purge", Share: 0.1, Count: -1, Status: 429, Code: "TooManyRequests", RetryAfter: 1, ARM: true})
	cfg := azure.Config{ARMEndpoint: proxy.URL(), CAFile: emu.CAFile()}
	opts, err := cfg.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	p, err := cdn.New(emu.Subscription(), azure.StaticToken(emu.Token()), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	emu.ResetRequests()

	var ok, failed atomic.Int64
	var errMu sync.Mutex
	var errs []string
	sent := map[string]int{}
	var sentMu sync.Mutex
	var wg sync.WaitGroup
	start := time.Now()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				paths := make([]string, perPurge)
				for j := range paths {
					paths[j] = fmt.Sprintf("/static/w%02d/p%02d/f%03d.css", g, i, j)
				}
				res, err := p.Purge(ctx, cdn.Request{ResourceGroup: rg, Profile: profile, Endpoint: endpoint, Paths: paths, Timeout: 5 * time.Minute})
				if err != nil || res.Requests != 1 || res.Collapsed {
					failed.Add(1)
					errMu.Lock()
					errs = append(errs, fmt.Sprintf("worker %d purge %d: %v %+v", g, i, err, res))
					errMu.Unlock()
					continue
				}
				ok.Add(1)
				sentMu.Lock()
				for _, x := range paths {
					sent[x]++
				}
				sentMu.Unlock()
			}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	outcomes := proxy.Outcomes()

	st := stateOf()
	got := st.Purges[before:]
	received := map[string]int{}
	for _, ps := range got {
		for _, x := range ps {
			received[x]++
		}
	}
	want := workers * each
	if n := ok.Load(); n != int64(want) {
		t.Errorf("%d of %d purges completed; first errors: %v", n, want, errs[:min(3, len(errs))])
	}
	if len(got) != want {
		t.Errorf("the endpoint received %d purges, want %d", len(got), want)
	}
	var dup, lost int
	for x, n := range sent {
		if received[x] == 0 {
			lost++
		} else if received[x] > 1 || n > 1 {
			dup++
		}
	}
	if lost > 0 || dup > 0 || len(received) != want*perPurge {
		t.Errorf("paths: %d sent, %d received, %d lost, %d purged more than once", len(sent), len(received), lost, dup)
	}
	posts := emu.Requests("POST", "*/purge")
	if posts != want {
		t.Errorf("the emulator saw %d purge POSTs, want %d (one per purge; the throttled ones never reach it)", posts, want)
	}
	throttled := outcomes["injected 429 TooManyRequests"]
	if throttled == 0 {
		t.Errorf("no purge was throttled: the run proves nothing (%v)", outcomes)
	}
	if fwd := outcomes["POST 202"]; fwd != int64(want) {
		t.Errorf("the proxy passed on %d accepted purges, want %d", fwd, want)
	}
	rows := [][2]string{
		{"purges", fmt.Sprintf("%d goroutines × %d purges × %d paths (Front Door %s)", workers, each, perPurge, endpoint)},
		{"injected", "429 + Retry-After: 1 to 10% of purge POSTs"},
		{"wall time", wall.Round(10 * time.Millisecond).String()},
		{"purges/s", fmt.Sprintf("%.1f", float64(want)/wall.Seconds())},
		{"completed / failed", fmt.Sprintf("%d / %d", ok.Load(), failed.Load())},
		{"purges received by the endpoint", fmt.Sprint(len(got))},
		{"paths sent / received / lost", fmt.Sprintf("%d / %d / %d", len(sent), len(received), lost)},
		{"429s absorbed", fmt.Sprint(throttled)},
		{"status polls (operationresults GETs)", fmt.Sprint(emu.Requests("GET", "*/operationresults/*"))},
	}
	printTable(t, "Front Door purge under load", append(rows, outcomeRows(outcomes)...))
}

// TestBenchConcurrentReleases: three `djdeploy release` processes started
// at once, each with its own edit of the project.
func TestBenchConcurrentReleases(t *testing.T) {
	const n = 3
	w := newWorld(t)
	ctx := context.Background()
	bin := w.binary(t)
	w.vary(t, "concurrent-base", 0)
	if r := w.release(ctx, nil); r.code != 0 {
		t.Fatalf("first release failed: %s", r)
	}
	base, probs := w.serving()
	if base == "" || len(probs) > 0 {
		t.Fatalf("production after the first release: %q %v", base, probs)
	}

	type proc struct {
		dir, runID string
		cmd        *exec.Cmd
		out, err   bytes.Buffer
		res        result
		rssMB      float64
	}
	procs := make([]*proc, n)
	orig := w.dir
	for i := range procs {
		w.dir = e2e.Project(t, "django-app")
		w.vary(t, fmt.Sprintf("concurrent-%d", i), 5*(i+1))
		pr := &proc{dir: w.dir, runID: fmt.Sprint(7001 + i)}
		env := e2e.With(w.env, map[string]string{"GITHUB_RUN_ID": pr.runID, "GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "org/site"})
		// Long enough that every release waits its turn.
		pr.cmd = exec.Command(bin, w.releaseArgs("--lock-timeout", "10m")...)
		pr.cmd.Env = envList(env)
		pr.cmd.Stdout, pr.cmd.Stderr = &pr.out, &pr.err
		procs[i] = pr
	}
	w.dir = orig

	// Production is checked throughout: it must serve a complete release
	// at every moment, not only at the end.
	stop := make(chan struct{})
	var watch sync.WaitGroup
	var checks atomic.Int64
	var watchMu sync.Mutex
	var watchProbs []string
	served := map[string]bool{}
	watch.Add(1)
	go func() {
		defer watch.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			id, probs := w.serving()
			checks.Add(1)
			watchMu.Lock()
			served[id] = true
			if len(probs) > 0 {
				watchProbs = append(watchProbs, fmt.Sprintf("%s: serving %q: %v", time.Now().Format("15:04:05.000"), id, probs))
			}
			watchMu.Unlock()
		}
	}()

	start := time.Now()
	var wg sync.WaitGroup
	for _, pr := range procs {
		if err := pr.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = pr.cmd.Wait()
			pr.res = decode(pr.cmd.ProcessState.ExitCode(), pr.out.String(), pr.err.String())
			pr.rssMB = float64(pr.cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	close(stop)
	watch.Wait()

	// Each completed in turn, or refused naming a holder.
	type span struct {
		i          int
		from, to   time.Time
		id, runID  string
		waitedFor  string
		lockWaited time.Duration
	}
	var spans []span
	var completed, refused int
	holders := map[string]bool{}
	for _, pr := range procs {
		holders["actions/runs/"+pr.runID] = true
	}
	for i, pr := range procs {
		rep := pr.res.rep
		switch {
		case pr.res.code == 0 && rep != nil && rep.Outcome == report.Succeeded:
			completed++
			var lock *report.Step
			for j := range rep.Steps {
				if rep.Steps[j].Name == "lock" {
					lock = &rep.Steps[j]
				}
			}
			if lock == nil {
				t.Errorf("release %d: its report has no lock step", i)
				continue
			}
			sp := span{i: i, from: lock.Started.Add(lock.Duration), to: rep.Started.Add(rep.Duration), id: rep.ReleaseID, runID: pr.runID, lockWaited: lock.Duration}
			var waited []string
			for h := range holders {
				if strings.Contains(pr.res.stderr, "waiting for the release lock") && strings.Contains(pr.res.stderr, h) {
					waited = append(waited, h)
				}
			}
			sort.Strings(waited)
			sp.waitedFor = strings.Join(waited, ", ")
			spans = append(spans, sp)
		case pr.res.code == 1 && rep != nil && rep.FailedStep == "lock":
			refused++
			named := false
			for h := range holders {
				named = named || strings.Contains(pr.res.stderr, h)
			}
			if !named {
				t.Errorf("release %d was refused at the lock without naming the holder:\n%s", i, pr.res)
			}
		default:
			t.Errorf("release %d neither completed nor was refused at the lock: %s", i, pr.res)
		}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].from.Before(spans[b].from) })
	for k := 1; k < len(spans); k++ {
		if spans[k].from.Before(spans[k-1].to) {
			t.Errorf("releases %d and %d held the lock at once: %s-%s and %s-%s", spans[k-1].i, spans[k].i,
				spans[k-1].from.Format("15:04:05.000"), spans[k-1].to.Format("15:04:05.000"),
				spans[k].from.Format("15:04:05.000"), spans[k].to.Format("15:04:05.000"))
		}
		if spans[k].waitedFor == "" {
			t.Errorf("release %d took the lock after another but did not say it waited for the holder:\n%s", spans[k].i, tail(procs[spans[k].i].res.stderr, 20))
		}
	}
	for _, p := range watchProbs {
		t.Errorf("production while the releases ran: %s", p)
	}

	// At the end: exactly one complete release, the last one to hold the
	// lock, with every file of the live releases still in the container.
	id, probs := w.serving()
	for _, p := range probs {
		t.Errorf("production at the end: %s", p)
	}
	want := base
	if len(spans) > 0 {
		want = spans[len(spans)-1].id
	}
	if id != want {
		t.Errorf("production serves %s, want %s (the last release to hold the lock)", id, want)
	}
	for _, p := range w.retainedFilesPresent(ctx) {
		t.Errorf("after the releases: %s", p)
	}
	var succeededSwaps int
	for _, s := range w.emu.State().Swaps {
		if s.Succeeded {
			succeededSwaps++
		}
	}

	rows := [][2]string{
		{"releases", fmt.Sprintf("%d processes started at once (--lock-timeout 10m)", n)},
		{"wall time (all)", wall.Round(10 * time.Millisecond).String()},
		{"completed / refused", fmt.Sprintf("%d / %d", completed, refused)},
		{"swaps (incl. the first release)", fmt.Sprint(succeededSwaps)},
		{"production checks during the run", fmt.Sprintf("%d, %d with problems, releases seen %d", checks.Load(), len(watchProbs), len(served))},
		{"production at the end", id},
	}
	for _, sp := range spans {
		rows = append(rows, [2]string{fmt.Sprintf("  release %d (run %s)", sp.i, sp.runID),
			fmt.Sprintf("lock held %s→%s, waited %s for %s, peak RSS %.0f MB", sp.from.Format("15:04:05.0"), sp.to.Format("15:04:05.0"),
				sp.lockWaited.Round(100*time.Millisecond), orDash(sp.waitedFor), procs[sp.i].rssMB)})
	}
	printTable(t, "Concurrent releases (separate processes)", rows)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
