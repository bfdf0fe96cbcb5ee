package artifact

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/webfiles"
)

// staticManifest is the part of Django's staticfiles.json djdeploy reads:
// "paths" maps each original name to its hashed name.
type staticManifest struct {
	Paths map[string]string `json:"paths"`
}

// hashedNames reads the hashing storage's manifest and returns the set of
// hashed names. ok is false when there is no manifest.
func hashedNames(file string) (map[string]bool, bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, false, nil
		}
		return nil, false, err
	}
	var m staticManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, false, fmt.Errorf("parsing %s: %w", file, err)
	}
	set := make(map[string]bool, len(m.Paths))
	for _, h := range m.Paths {
		set[h] = true
	}
	return set, true, nil
}

// listStatic describes every collected file under dir, sorted by path.
// manifestName is the hashing storage's manifest (staticfiles.json), or ""
// when the storage keeps none; then names are judged by their look.
func listStatic(dir, manifestName string) ([]StaticFile, int64, error) {
	var hashed map[string]bool
	haveManifest := false
	if manifestName != "" {
		var err error
		if hashed, haveManifest, err = hashedNames(filepath.Join(dir, filepath.FromSlash(manifestName))); err != nil {
			return nil, 0, err
		}
	}
	var files []StaticFile
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if !d.Type().IsRegular() {
			return fmt.Errorf("collected static file %s is not a regular file (a symlink? collectstatic --link is not supported)", rel)
		}
		// Refused here, by name, rather than stored under another name
		// (Blob Storage makes "\" a "/") or served under a broken URL.
		if err := webfiles.CheckName(rel); err != nil {
			return problem.Usagef("rename the file in the project's static folders (or leave it out of STATICFILES_DIRS)",
				"static file %q: its name %v", rel, err)
		}
		f := StaticFile{Path: rel, ContentType: webfiles.ContentType(rel)}
		switch {
		case haveManifest:
			f.Hashed = hashed[rel]
		default:
			f.Hashed = webfiles.LooksHashed(rel)
		}
		if rel == manifestName {
			f.Hashed = false
		}
		files = append(files, f)
		return nil
	})
	if err != nil {
		if _, ok := problem.As(err); ok {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("listing collected static files: %w", err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })

	// MD5 (for Content-MD5 and change detection) in parallel: static
	// folders of admin-heavy sites run to thousands of files.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		total int64
	)
	idx := make(chan int)
	for k := 0; k < runtime.GOMAXPROCS(0); k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := md5.New()
			for i := range idx {
				size, sum, err := md5File(filepath.Join(dir, filepath.FromSlash(files[i].Path)), h)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				total += size
				mu.Unlock()
				files[i].Size, files[i].MD5 = size, sum
			}
		}()
	}
	for i := range files {
		idx <- i
	}
	close(idx)
	wg.Wait()
	if first != nil {
		return nil, 0, first
	}
	if files == nil {
		files = []StaticFile{}
	}
	return files, total, nil
}

func md5File(p string, h interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h.Reset()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, "", fmt.Errorf("reading %s: %w", p, err)
	}
	return n, base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}
