//go:build bench

// Static sync against its peers, in one run, on one Azurite: djdeploy (the
// built binary), az storage blob upload-batch, rclone sync --checksum and
// azcopy sync. See /work/shared/research/bench-peers.md for how the peers
// are run and why Azurite's debug log is the request counter.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

// DJDEPLOY_BENCH_STATIC_FILES and _RUNS shrink the run for a smoke test.
var (
	benchFiles = envInt("DJDEPLOY_BENCH_STATIC_FILES", 5000)
	benchRuns  = envInt("DJDEPLOY_BENCH_STATIC_RUNS", 3)
)

func envInt(k string, def int) int {
	var n int
	if _, err := fmt.Sscan(os.Getenv(k), &n); err == nil && n > 0 {
		return n
	}
	return def
}

type staticTool struct {
	name string
	// cmd builds the command for a container; nil means the tool is missing.
	cmd func(srv *azurite.Server, container string) *exec.Cmd
}

type measure struct {
	wall     time.Duration
	cpu      time.Duration
	rssKB    int64
	requests map[string]int
}

func repoRoot(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repo root not found from %s", file)
	}
	return root
}

// makeTree writes a tree shaped like collectstatic output: mostly 1-20 KB
// css/js/svg/png (half of them with hashed names), a few 0.2-2 MB files.
func makeTree(t *testing.T, dir string) (files int, bytes int64) {
	r := rand.New(rand.NewPCG(1, 2))
	exts := []string{".js", ".js", ".css", ".css", ".svg", ".png"}
	buf := make([]byte, 2<<20)
	for i := range buf {
		buf[i] = "abcdefghijklmnopqrstuvwxyz{}();:. \n0123456789"[r.IntN(45)]
	}
	for i := range benchFiles {
		ext := exts[r.IntN(len(exts))]
		size := 1024 + r.IntN(19*1024)
		if i%500 == 7 {
			size = 200*1024 + r.IntN(1800*1024)
		}
		name := fmt.Sprintf("app%02d/sub%d/file%04d", i%40, i%7, i)
		if i%2 == 0 {
			name += fmt.Sprintf(".%012x", r.Uint64()&0xffffffffffff)
		}
		p := filepath.Join(dir, name+ext)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		off := r.IntN(len(buf) - size)
		data := append([]byte(fmt.Sprintf("/* %d */", i)), buf[off:off+size]...)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files++
		bytes += int64(len(data))
	}
	return files, bytes
}

func accountSAS(t *testing.T) string {
	cred, err := service.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.AccountSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(24 * time.Hour),
		Permissions:   (&sas.AccountPermissions{Read: true, Write: true, Delete: true, List: true, Add: true, Create: true}).String(),
		ResourceTypes: (&sas.AccountResourceTypes{Service: true, Container: true, Object: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return qp.Encode()
}

func TestBenchStaticSync(t *testing.T) {
	if _, err := azurite.Find(); err != nil {
		testenv.Missing(t, "azurite", err.Error())
	}
	root := repoRoot(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "djdeploy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/djdeploy")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src := filepath.Join(tmp, "static")
	nfiles, nbytes := makeTree(t, src)
	t.Logf("tree: %d files, %.1f MB", nfiles, float64(nbytes)/1e6)
	sasQuery := accountSAS(t)

	tools := []staticTool{{name: "djdeploy", cmd: func(srv *azurite.Server, c string) *exec.Cmd {
		cmd := exec.Command(bin, "static", "sync", "--source", src, "--static-container", c)
		cmd.Env = append(os.Environ(), "AZURE_STORAGE_CONNECTION_STRING="+srv.ConnectionString())
		return cmd
	}}}
	if az, err := exec.LookPath("az"); err == nil {
		azHome := filepath.Join(tmp, "azhome")
		tools = append(tools, staticTool{name: "az upload-batch", cmd: func(srv *azurite.Server, c string) *exec.Cmd {
			cmd := exec.Command(az, "storage", "blob", "upload-batch", "-d", c, "-s", src, "--overwrite", "--no-progress", "-o", "none")
			cmd.Env = append(os.Environ(), "AZURE_STORAGE_CONNECTION_STRING="+srv.ConnectionString(), "AZURE_CONFIG_DIR="+azHome,
				"AZURE_CORE_COLLECT_TELEMETRY=no", "AZURE_CORE_ONLY_SHOW_ERRORS=yes")
			return cmd
		}})
	} else {
		t.Logf("SKIPPED peer az: not installed (run .ci/bench-deps.sh)")
	}
	if rc, err := exec.LookPath("rclone"); err == nil {
		tools = append(tools, staticTool{name: "rclone sync", cmd: func(srv *azurite.Server, c string) *exec.Cmd {
			conf := filepath.Join(tmp, "rclone-"+c+".conf")
			_ = os.WriteFile(conf, []byte(fmt.Sprintf("[az]\ntype = azureblob\nsas_url = %s?%s\n", srv.BlobEndpoint(), sasQuery)), 0o600)
			return exec.Command(rc, "sync", src, "az:"+c, "--transfers", "16", "--checkers", "16", "--checksum", "--config", conf, "-q")
		}})
	} else {
		t.Logf("SKIPPED peer rclone: not installed (run .ci/bench-deps.sh)")
	}
	azcopy := filepath.Join(root, ".tools", "node_modules", "@azure-tools", "azcopy-linux", "dist", "bin", "azcopy_linux_amd64")
	if _, err := os.Stat(azcopy); err == nil {
		tools = append(tools, staticTool{name: "azcopy sync", cmd: func(srv *azurite.Server, c string) *exec.Cmd {
			cmd := exec.Command(azcopy, "sync", src, srv.BlobEndpoint()+"/"+c+"?"+sasQuery, "--recursive", "--from-to", "LocalBlob", "--skip-version-check")
			cmd.Env = append(os.Environ(), "AZCOPY_LOG_LOCATION="+filepath.Join(tmp, "azcopy-logs"), "AZCOPY_JOB_PLAN_LOCATION="+filepath.Join(tmp, "azcopy-plans"))
			return cmd
		}})
	} else {
		t.Logf("SKIPPED peer azcopy: not installed (run .ci/bench-deps.sh)")
	}

	// cold[tool][run], warm[tool][run]; runs are paired: every tool in
	// each round, each on a fresh Azurite, so noise hits all alike.
	cold := map[string][]measure{}
	warm := map[string][]measure{}
	for run := range benchRuns {
		for _, tool := range tools {
			c, w := benchOne(t, tool, tmp, run)
			cold[tool.name] = append(cold[tool.name], c)
			warm[tool.name] = append(warm[tool.name], w)
			t.Logf("run %d %-16s cold %6.2fs warm %6.2fs", run+1, tool.name, c.wall.Seconds(), w.wall.Seconds())
		}
	}
	report(t, tools, cold, warm, nfiles)
}

// benchOne runs a tool cold (empty container) then warm (nothing changed)
// against a fresh Azurite whose debug log counts the requests.
func benchOne(t *testing.T, tool staticTool, tmp string, run int) (cold, warm measure) {
	logFile := filepath.Join(tmp, fmt.Sprintf("azurite-%d-%s.log", run, strings.Fields(tool.name)[0]))
	srv, err := azurite.Start(context.Background(), azurite.Options{InMemory: true, DebugLog: logFile})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	const container = "bench"
	// The peers expect the container; djdeploy creates it, so give it none.
	if tool.name != "djdeploy" {
		sc, err := service.NewClientFromConnectionString(srv.ConnectionString(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := sc.CreateContainer(context.Background(), container, nil); err != nil {
			t.Fatal(err)
		}
	}
	offset := logSize(logFile)
	cold = runTool(t, tool, srv, container)
	cold.requests, offset = countRequests(t, logFile, offset)
	warm = runTool(t, tool, srv, container)
	warm.requests, _ = countRequests(t, logFile, offset)
	return cold, warm
}

func runTool(t *testing.T, tool staticTool, srv *azurite.Server, container string) measure {
	cmd := tool.cmd(srv, container)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s: %v\n%s", tool.name, err, tail(out.String(), 2000))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return measure{wall: wall, cpu: cpu, rssKB: ru.Maxrss}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func logSize(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

var opRE = regexp.MustCompile(`DispatchMiddleware: Operation=([A-Za-z_]+)`)

// countRequests reads Azurite's debug log from offset: one
// "DispatchMiddleware: Operation=X" line per request. Azurite flushes
// asynchronously, so wait until the log stops growing.
func countRequests(t *testing.T, p string, offset int64) (map[string]int, int64) {
	last := int64(-1)
	for range 50 {
		s := logSize(p)
		if s == last {
			break
		}
		last = s
		time.Sleep(200 * time.Millisecond)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, 0); err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var n int64
	for sc.Scan() {
		n += int64(len(sc.Bytes())) + 1
		if m := opRE.FindSubmatch(sc.Bytes()); m != nil {
			out[string(m[1])]++
		}
	}
	return out, offset + n
}

func median(ms []measure, f func(measure) float64) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	sort.Float64s(v)
	return v[len(v)/2]
}

func fmtReq(m map[string]int) string {
	var keys []string
	total := 0
	for k, n := range m {
		keys = append(keys, k)
		total += n
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, " "))
}

func report(t *testing.T, tools []staticTool, cold, warm map[string][]measure, nfiles int) {
	wall := func(m measure) float64 { return m.wall.Seconds() }
	cpu := func(m measure) float64 { return m.cpu.Seconds() * 1000 / float64(nfiles) }
	rss := func(m measure) float64 { return float64(m.rssKB) / 1024 }
	dj := "djdeploy"
	var b strings.Builder
	fmt.Fprintf(&b, "\nstatic sync, %d files, median of %d paired runs (one fresh Azurite per tool per run)\n", nfiles, len(cold[dj]))
	fmt.Fprintf(&b, "%-16s %9s %9s %11s %11s %9s %11s %11s\n", "tool", "cold s", "warm s", "cpu/1k cold", "cpu/1k warm", "peak MB", "cold/djd", "warm/djd")
	for _, tool := range tools {
		n := tool.name
		fmt.Fprintf(&b, "%-16s %9.2f %9.2f %11.3f %11.3f %9.1f %10.1fx %10.1fx\n", n,
			median(cold[n], wall), median(warm[n], wall), median(cold[n], cpu), median(warm[n], cpu),
			max(median(cold[n], rss), median(warm[n], rss)),
			median(cold[n], wall)/median(cold[dj], wall), median(warm[n], wall)/median(warm[dj], wall))
	}
	fmt.Fprintf(&b, "requests (first run):\n")
	for _, tool := range tools {
		fmt.Fprintf(&b, "  %-16s cold %s\n  %-16s warm %s\n", tool.name, fmtReq(cold[tool.name][0].requests), "", fmtReq(warm[tool.name][0].requests))
	}
	fmt.Fprintf(&b, "targets: djdeploy cpu/1k <= 0.5 s cold, <= 0.15 s warm; peak < 64 MB; cold >= 3x faster than az, >= 2x than rclone and azcopy; warm fastest\n")
	t.Log(b.String())
}
