//go:build bench

// The build's zip step against its peers, in one run, on one generated
// project: djdeploy's parallel deterministic zip (artifact.ZipDir, run in a
// child process so its peak memory is its own), Info-ZIP's `zip -r -q`, and
// Python's shutil.make_archive. Reports the median wall time of 3 runs,
// ratios, output sizes and peak RSS. It asserts no timing; it fails only if
// djdeploy's zip is not byte-reproducible or not a valid zip.
package bench

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/artifact"
)

const zipChildEnv = "DJDEPLOY_BENCH_ZIP_CHILD" // "src|dst": run as the zip child

type zipRun struct {
	wall   time.Duration
	rssKB  int64
	size   int64
	sha256 string
}

// TestBenchZip compares the zip step with Info-ZIP and Python.
func TestBenchZip(t *testing.T) {
	if spec := os.Getenv(zipChildEnv); spec != "" {
		zipChild(t, spec)
		return
	}
	for _, tool := range []string{"/usr/bin/zip", "/usr/bin/python3"} {
		if _, err := os.Stat(tool); err != nil {
			t.Fatalf("%s is missing: run 'make deps'", tool)
		}
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "project")
	start := time.Now()
	files, bytes := zipBenchTree(t, src)
	t.Logf("generated %d files, %.1f MB in %s", files, float64(bytes)/1e6, time.Since(start).Round(time.Millisecond))
	zipBenchWarm(t, src) // every tool reads from the page cache

	tools := []struct {
		name string
		run  func(out string) *exec.Cmd
	}{
		{"djdeploy", func(out string) *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^TestBenchZip$", "-test.count=1")
			cmd.Env = append(os.Environ(), zipChildEnv+"="+src+"|"+out)
			return cmd
		}},
		{"zip -r (Info-ZIP)", func(out string) *exec.Cmd {
			cmd := exec.Command("/usr/bin/zip", "-r", "-q", out, ".")
			cmd.Dir = src
			return cmd
		}},
		{"python shutil", func(out string) *exec.Cmd {
			return exec.Command("/usr/bin/python3", "-c",
				"import shutil, sys; shutil.make_archive(sys.argv[1][:-4], 'zip', sys.argv[2])", out, src)
		}},
	}
	results := map[string][]zipRun{}
	for round := 0; round < 3; round++ {
		for _, tool := range tools {
			out := filepath.Join(tmp, fmt.Sprintf("out-%d.zip", round))
			os.Remove(out)
			cmd := zipTimed(tool.run(out))
			var stderr strings.Builder
			cmd.Stderr = &stderr
			begin := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", tool.name, err, stderr.String())
			}
			wall := time.Since(begin)
			r := zipRun{wall: wall, rssKB: zipPeakKB(cmd, stderr.String())}
			r.size, r.sha256 = zipDigest(t, out)
			if tool.name == "djdeploy" {
				zipCheckValid(t, out, files)
			}
			results[tool.name] = append(results[tool.name], r)
			os.Remove(out)
		}
	}
	dj := results["djdeploy"]
	for _, r := range dj[1:] {
		if r.sha256 != dj[0].sha256 {
			t.Fatalf("djdeploy's zip is not reproducible: %s vs %s", dj[0].sha256, r.sha256)
		}
	}

	ref := zipMedian(results["zip -r (Info-ZIP)"])
	refSize := results["zip -r (Info-ZIP)"][0].size
	var b strings.Builder
	fmt.Fprintf(&b, "\nzip of a generated project: %d files, %.1f MB, %d CPUs (median of 3 runs)\n", files, float64(bytes)/1e6, runtime.NumCPU())
	fmt.Fprintf(&b, "%-20s %10s %14s %12s %12s %12s %14s\n", "tool", "wall", "speed vs zip", "size MB", "size vs zip", "peak RSS MB", "reproducible")
	for _, tool := range tools {
		rs := results[tool.name]
		med := zipMedian(rs)
		peak := int64(0)
		repro := "yes"
		for _, r := range rs {
			peak = max(peak, r.rssKB)
			if r.sha256 != rs[0].sha256 {
				repro = "no"
			}
		}
		fmt.Fprintf(&b, "%-20s %10s %13.2fx %12.1f %+11.1f%% %12.1f %14s\n", tool.name, med.Round(time.Millisecond),
			float64(ref)/float64(med), float64(rs[0].size)/1e6, 100*(float64(rs[0].size)/float64(refSize)-1),
			float64(peak)/1024, repro)
	}
	t.Log(b.String())
}

// zipChild is the djdeploy side, in its own process.
func zipChild(t *testing.T, spec string) {
	src, dst, ok := strings.Cut(spec, "|")
	if !ok {
		t.Fatalf("bad %s", zipChildEnv)
	}
	st, err := artifact.ZipDir(context.Background(), src, dst, artifact.ZipOptions{})
	if err != nil {
		t.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(st)
}

// zipTimed runs cmd under /usr/bin/time when present. The kernel's Maxrss of
// a child started straight from this (large) test process also counts the
// parent's memory at exec time; time(1) is small, so its child's figure is
// the tool's own.
func zipTimed(cmd *exec.Cmd) *exec.Cmd {
	if _, err := os.Stat("/usr/bin/time"); err != nil {
		return cmd
	}
	timed := exec.Command("/usr/bin/time", append([]string{"-f", "DJDEPLOY_MAXRSS_KB=%M", cmd.Path}, cmd.Args[1:]...)...)
	timed.Dir, timed.Env = cmd.Dir, cmd.Env
	return timed
}

func zipPeakKB(cmd *exec.Cmd, stderr string) int64 {
	if i := strings.LastIndex(stderr, "DJDEPLOY_MAXRSS_KB="); i >= 0 {
		var kb int64
		if _, err := fmt.Sscanf(stderr[i:], "DJDEPLOY_MAXRSS_KB=%d", &kb); err == nil {
			return kb
		}
	}
	return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
}

func zipMedian(rs []zipRun) time.Duration {
	ws := make([]time.Duration, len(rs))
	for i, r := range rs {
		ws[i] = r.wall
	}
	sort.Slice(ws, func(i, j int) bool { return ws[i] < ws[j] })
	return ws[len(ws)/2]
}

func zipDigest(t *testing.T, file string) (int64, string) {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return n, fmt.Sprintf("%x", h.Sum(nil))
}

func zipCheckValid(t *testing.T, file string, files int) {
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatalf("djdeploy's zip does not open: %v", err)
	}
	defer zr.Close()
	n := 0
	for _, f := range zr.File {
		if !strings.HasSuffix(f.Name, "/") {
			n++
		}
	}
	if n != files {
		t.Fatalf("djdeploy's zip holds %d files, the tree %d", n, files)
	}
}

func zipBenchWarm(t *testing.T, dir string) {
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			if f, err := os.Open(p); err == nil {
				io.Copy(io.Discard, f)
				f.Close()
			}
		}
		return nil
	})
}

// zipBenchTree writes a project of about 200 MB in a few thousand files:
// mostly source-like text of varied sizes, some incompressible binaries
// (images, fonts), and two large files; nothing the default excludes drop.
func zipBenchTree(t *testing.T, dir string) (files int, total int64) {
	rng := rand.New(rand.NewPCG(42, 7))
	words := strings.Fields(`def class return import from self request response django models views urls
		settings template static context render queryset filter objects create update delete user admin
		if else elif for while try except finally with as lambda yield async await None True False
		the and of to in is it that this value name id data item items list dict str int float print
		<div> </div> <span> <p> </p> color: margin: padding: display: flex; grid; font-size: 12px 1rem
		function const let var => { } ( ) [ ] ; , . = == === != + - * / % && || ! ? : # // /* */`)
	write := func(name string, data []byte) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		files++
		total += int64(len(data))
	}
	text := func(size int) []byte {
		var b strings.Builder
		b.Grow(size + 100)
		indent := 0
		for b.Len() < size {
			b.WriteString(strings.Repeat("    ", indent))
			for n := 3 + rng.IntN(9); n > 0; n-- {
				b.WriteString(words[rng.IntN(len(words))])
				if rng.IntN(7) == 0 {
					fmt.Fprintf(&b, "_%d", rng.IntN(1000))
				}
				b.WriteByte(' ')
			}
			b.WriteByte('\n')
			indent = (indent + rng.IntN(3) - 1 + 4) % 4
		}
		return []byte(b.String())
	}
	binary := func(size int) []byte {
		buf := make([]byte, size)
		for i := 0; i < size; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < size; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		return buf
	}
	exts := []string{"py", "html", "css", "js", "json", "txt", "md"}
	for i := 0; i < 2600; i++ {
		size := int(1000 * (1 + rng.ExpFloat64()*50)) // mean ~51 KB, long tail
		if size > 900_000 {
			size = 900_000
		}
		write(fmt.Sprintf("app%02d/mod%02d/file%04d.%s", i%40, i%13, i, exts[i%len(exts)]), text(size))
	}
	for i := 0; i < 300; i++ {
		size := 20_000 + rng.IntN(260_000)
		ext := []string{"png", "jpg", "woff2", "gz"}[i%4]
		write(fmt.Sprintf("assets/img%02d/blob%03d.%s", i%10, i, ext), binary(size))
	}
	write("data/big-fixture.json", text(12<<20))
	write("data/model.bin", binary(8<<20))
	return files, total
}
