package staticsync

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/webfiles"
)

// File is one local static file.
type File struct {
	Rel    string // path below the source folder, with forward slashes
	Abs    string
	Size   int64
	MD5    []byte // of the file's bytes
	Hashed bool   // the name carries a content hash: cache it forever
}

// ReleaseFile is the part of build's release.json that sync reads. (The
// artifact package owns the format; this is a reader's minimal view.)
type ReleaseFile struct {
	Schema    int    `json:"schema"`
	ReleaseID string `json:"release_id"`
	Static    []struct {
		Path   string `json:"path"`
		Size   int64  `json:"size"`
		MD5    string `json:"md5"`
		Hashed bool   `json:"hashed"`
	} `json:"static"`
}

// Source is a scanned folder of static files.
type Source struct {
	Dir       string
	Files     []*File // sorted by Rel
	ReleaseID string
	// Manifest says where hashed flags and MD5s came from: "release.json",
	// "staticfiles.json" or "" (name pattern).
	Manifest string
}

// ReadSource scans dir. releaseJSON may be "" (then <dir>/../release.json
// is used when it exists). MD5s come from release.json when it lists the
// file (its size is checked); the rest are computed, in parallel.
func ReadSource(ctx context.Context, dir, releaseJSON string) (*Source, error) {
	st, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, problem.Usagef("give the folder collectstatic wrote (STATIC_ROOT), or build's --out folder + /static",
				"static source folder %s does not exist", dir)
		}
		return nil, problem.Usagef("check the folder's permissions", "cannot read static source folder %s: %v", dir, err)
	}
	if !st.IsDir() {
		return nil, problem.Usagef("give a folder, not a file", "static source %s is not a folder", dir)
	}
	src := &Source{Dir: dir}
	if err := src.walk(); err != nil {
		return nil, err
	}

	explicit := releaseJSON != ""
	if !explicit {
		cand := filepath.Join(filepath.Dir(filepath.Clean(dir)), "release.json")
		if _, err := os.Stat(cand); err == nil {
			releaseJSON = cand
		}
	}
	known := map[string]bool{}
	if releaseJSON != "" {
		if err := src.applyRelease(releaseJSON, known); err != nil {
			return nil, err
		}
	} else if err := src.applyStaticfilesJSON(); err != nil {
		return nil, err
	}
	if err := src.hashRest(ctx, known); err != nil {
		return nil, err
	}
	if src.ReleaseID == "" {
		src.ReleaseID = contentID(src.Files)
	}
	return src, nil
}

func (s *Source) walk() error {
	err := filepath.WalkDir(s.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.Dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel == ".djdeploy" || strings.HasPrefix(rel, ".djdeploy/") {
			return problem.Usagef("remove or rename it: .djdeploy/ in the container holds djdeploy's own state",
				"static source has a file under .djdeploy/: %s", rel)
		}
		if err := webfiles.CheckName(rel); err != nil {
			return problem.Usagef("rename the file: its blob and URL would not keep its name",
				"static file %q in %s: its name %v", rel, s.Dir, err)
		}
		// Follow symlinks (collectstatic --link makes them).
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		s.Files = append(s.Files, &File{Rel: rel, Abs: p, Size: fi.Size(), Hashed: webfiles.LooksHashed(rel)})
		return nil
	})
	if err != nil {
		if _, ok := problem.As(err); ok {
			return err
		}
		return problem.Usagef("check the folder's permissions", "scanning static source %s: %v", s.Dir, err)
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Rel < s.Files[j].Rel })
	return nil
}

func (s *Source) applyRelease(path string, known map[string]bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return problem.Usagef("give the release.json that 'djdeploy build' wrote, or drop --release-manifest",
			"cannot read release manifest %s: %v", path, err)
	}
	var rf ReleaseFile
	if err := json.Unmarshal(data, &rf); err != nil {
		return problem.Usagef("rebuild with 'djdeploy build'", "release manifest %s is not valid JSON: %v", path, err)
	}
	if rf.Schema != 1 {
		return problem.Usagef("use a djdeploy build of the same version", "release manifest %s has schema %d; this djdeploy reads schema 1", path, rf.Schema)
	}
	byRel := make(map[string]*File, len(s.Files))
	for _, f := range s.Files {
		byRel[f.Rel] = f
	}
	for _, e := range rf.Static {
		f, ok := byRel[e.Path]
		if !ok {
			return problem.Usagef("sync the static folder of the same build, or rebuild",
				"%s lists %s, but %s has no such file", path, e.Path, s.Dir)
		}
		if f.Size != e.Size {
			return problem.Usagef("the folder changed after the build: rebuild, then sync",
				"%s: size is %d bytes but %s says %d", f.Abs, f.Size, path, e.Size)
		}
		sum, err := base64.StdEncoding.DecodeString(e.MD5)
		if err != nil || len(sum) != md5.Size {
			return problem.Usagef("rebuild with 'djdeploy build'", "%s: md5 of %s is not a base64 MD5", path, e.Path)
		}
		f.MD5, f.Hashed = sum, e.Hashed
		known[f.Rel] = true
	}
	s.ReleaseID = rf.ReleaseID
	s.Manifest = "release.json"
	return nil
}

// applyStaticfilesJSON marks as hashed exactly the names Django's
// ManifestStaticFilesStorage wrote: they are authoritative over the pattern.
func (s *Source) applyStaticfilesJSON() error {
	data, err := os.ReadFile(filepath.Join(s.Dir, "staticfiles.json"))
	if err != nil {
		return nil // not a manifest storage project: the name pattern decides
	}
	var m struct {
		Paths map[string]string `json:"paths"`
	}
	if err := json.Unmarshal(data, &m); err != nil || m.Paths == nil {
		return nil // some other staticfiles.json: keep the pattern
	}
	hashed := make(map[string]bool, len(m.Paths))
	for _, v := range m.Paths {
		hashed[v] = true
	}
	for _, f := range s.Files {
		f.Hashed = hashed[f.Rel]
	}
	s.Manifest = "staticfiles.json"
	return nil
}

// hashRest computes the MD5 of files release.json did not give, streaming
// each file through the hash with one goroutine per core.
func (s *Source) hashRest(ctx context.Context, known map[string]bool) error {
	work := make(chan *File)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64<<10)
			for f := range work {
				sum, err := fileMD5(f.Abs, buf)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = problem.Usagef("check the file's permissions", "reading %s: %v", f.Abs, err)
					}
					mu.Unlock()
					continue
				}
				f.MD5 = sum
			}
		}()
	}
	for _, f := range s.Files {
		if known[f.Rel] {
			continue
		}
		select {
		case work <- f:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return firstErr
}

func fileMD5(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// contentID names a release that has no release.json by its content, so the
// same files always make the same release id.
func contentID(files []*File) string {
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\t%x\n", f.Rel, f.MD5)
	}
	return hex.EncodeToString(h.Sum(nil))[:20]
}

// ValidReleaseID reports whether id can name a manifest blob.
func ValidReleaseID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return id != "." && id != ".."
}
