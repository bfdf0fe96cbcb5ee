package artifact

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// zipFixture makes a tree with small text, an empty file, an executable,
// incompressible bytes and files above the spill size (both kinds).
func zipFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	random := make([]byte, 300<<10)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for i := 0; text.Len() < 400<<10; i++ {
		fmt.Fprintf(&text, "line %d: the quick brown fox jumps over the lazy dog\n", i)
	}
	files := map[string]string{
		"manage.py":          "print('hi')\n",
		"empty.txt":          "",
		"app/views.py":       strings.Repeat("def view(request):\n    return None\n", 50),
		"app/static/a.png":   string(random[:5000]),
		"big/text.log":       text.String(),
		"big/random.bin":     string(random),
		"ünïcode/naïve.py":   "x = 1\n",
		"run.sh":             "#!/bin/sh\necho hi\n",
		"deep/a/b/c/d/e.txt": "deep\n",
	}
	writeFiles(t, dir, files)
	if err := os.Chmod(filepath.Join(dir, "run.sh"), 0o775); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestZipDirDeterministicAndReadable(t *testing.T) {
	dir := zipFixture(t)
	out := t.TempDir()
	// Small spill size so both the in-memory and the temp-file paths run;
	// different worker counts must not change a byte.
	var first []byte
	for i, workers := range []int{1, 4, 7} {
		file := filepath.Join(out, fmt.Sprintf("app%d.zip", i))
		st, err := ZipDir(context.Background(), dir, file, ZipOptions{Workers: workers, SpillSize: 64 << 10})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size != int64(len(data)) || st.Files != 9 {
			t.Fatalf("stats %+v for a %d-byte zip", st, len(data))
		}
		if first == nil {
			first = data
			continue
		}
		if !bytes.Equal(first, data) {
			t.Fatalf("zip with %d workers differs from the one with 1 worker", workers)
		}
	}
	// Touching files (new mtimes) must not change the zip either.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "manage.py"), later, later); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(out, "again.zip")
	if _, err := ZipDir(context.Background(), dir, again, ZipOptions{}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(again); !bytes.Equal(first, data) {
		t.Fatal("zip changed with file modification times")
	}

	zr, err := zip.NewReader(bytes.NewReader(first), int64(len(first)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Modified.IsZero() && (f.ModifiedDate != 33 || f.ModifiedTime != 0) {
			t.Errorf("%s: DOS time %d/%d, want 1980-01-01", f.Name, f.ModifiedDate, f.ModifiedTime)
		}
		if f.CreatorVersion>>8 != 3 {
			t.Errorf("%s: creator %x is not Unix", f.Name, f.CreatorVersion)
		}
		mode := f.Mode()
		switch {
		case strings.HasSuffix(f.Name, "/"):
			if !mode.IsDir() || mode.Perm() != 0o755 {
				t.Errorf("%s: mode %v", f.Name, mode)
			}
			continue
		case f.Name == "run.sh":
			if mode.Perm() != 0o755 {
				t.Errorf("%s: mode %v, want 0755", f.Name, mode)
			}
		default:
			if mode.Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", f.Name, mode)
			}
		}
		if f.Name == "big/random.bin" && f.Method != zip.Store {
			t.Errorf("incompressible file should be stored, method %d", f.Method)
		}
		if f.Name == "big/text.log" && (f.Method != zip.Deflate || f.CompressedSize64*4 > f.UncompressedSize64) {
			t.Errorf("text should deflate well: method %d, %d -> %d", f.Method, f.UncompressedSize64, f.CompressedSize64)
		}
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc) // checks the CRC too
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		want, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(f.Name)))
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content differs", f.Name)
		}
	}
	wantNames := "app/ app/static/ app/static/a.png app/views.py big/ big/random.bin big/text.log deep/ deep/a/ deep/a/b/ deep/a/b/c/ deep/a/b/c/d/ deep/a/b/c/d/e.txt empty.txt manage.py run.sh ünïcode/ ünïcode/naïve.py"
	if got := strings.Join(names, " "); got != wantNames {
		t.Fatalf("entries not sorted or wrong:\n got %s\nwant %s", got, wantNames)
	}
}

func TestZipSourceDateEpoch(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a"})
	file := filepath.Join(t.TempDir(), "a.zip")
	when := time.Date(2024, 5, 17, 13, 45, 10, 0, time.UTC)
	if _, err := ZipDir(context.Background(), dir, file, ZipOptions{ModTime: when}); err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(file)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if got := zr.File[0].Modified; !got.Equal(when) {
		t.Fatalf("modified %v, want %v", got, when)
	}
}

func TestZipCancelled(t *testing.T) {
	dir := zipFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	file := filepath.Join(t.TempDir(), "app.zip")
	if _, err := ZipDir(ctx, dir, file, ZipOptions{Workers: 2}); err == nil {
		t.Fatal("want an error from a cancelled context")
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatal("a cancelled zip must leave no app.zip behind")
	}
}
