package release

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/djdeploy/djdeploy/internal/artifact"
	"github.com/djdeploy/djdeploy/internal/ledger"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/report"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// record writes the run to the release ledger. A release that never got a
// release id (its build failed) has nothing to name and is not recorded.
func (r *runner) record(ctx context.Context) {
	if r.out.ReleaseID == "" || r.deps.Static == nil {
		return
	}
	e := ledger.Entry{
		ReleaseID: r.out.ReleaseID, Kind: ledger.KindRelease, App: r.opt.Target.App, Slot: r.opt.Target.Slot,
		Commit: r.opt.Annotations["Commit"], RunURL: r.opt.Annotations["RunURL"],
		Start: r.out.Started.UTC(), DurationSeconds: r.out.Duration.Seconds(),
		Outcome: r.out.Outcome, FailedStep: r.out.FailedStep, Error: r.out.Error, Live: r.out.Live,
	}
	switch {
	case r.opt.RollbackFrom != "":
		e.Kind, e.From = ledger.KindRollback, r.opt.RollbackFrom
	case r.opt.Preview:
		e.Kind = ledger.KindPreview
	}
	if e.Commit == "" && r.art != nil {
		e.Commit = r.art.Manifest.GitCommit
	}
	if r.lock != nil {
		e.LockHolder = r.lock.Holder
	}
	if r.st != nil {
		e.Deployment = r.st.Deployment
	}
	if err := ledger.New(r.deps.Static.Store()).Append(ctx, e); err != nil {
		r.rep.Warnf("recording the release in the ledger: %v ('djdeploy releases' will not list this run)", err)
	}
}

// artifactName is where a kept package's file lives in the state store.
func artifactName(id, file string) string { return staticsync.ArtifactsDir + id + "/" + file }

// Files of a kept package.
const (
	keptZip      = "app.zip"
	keptManifest = "release.json"
	keptStatic   = "static.zip"
)

// retain keeps the package of a release that reached production (app.zip,
// release.json and its static files as one zip) beside the ledger, so
// `djdeploy rollback` can put it back from any runner. Prune deletes it
// with the release's static files. Failing to keep it is a warning: the
// release is live; only a rollback to it would need its build folder.
func (r *runner) retain(ctx context.Context) {
	if r.opt.Preview || r.art == nil || r.deps.Static == nil {
		return
	}
	if err := r.keepArtifact(ctx); err != nil {
		r.rep.Warnf("keeping release %s's package for rollbacks: %v (a rollback to it will need its build folder: djdeploy release --artifact)", r.art.Manifest.ReleaseID, err)
	}
}

func (r *runner) keepArtifact(ctx context.Context) error {
	store := r.deps.Static.Store()
	id := r.art.Manifest.ReleaseID
	// release.json goes last: its presence says the package is whole.
	if ok, err := store.Exists(ctx, artifactName(id, keptManifest)); err != nil || ok {
		return err
	}
	if err := store.PutFile(ctx, artifactName(id, keptZip), r.art.ZipPath); err != nil {
		return err
	}
	if len(r.art.Manifest.Static) > 0 {
		tmp, err := os.MkdirTemp("", "djdeploy-keep-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		sz := filepath.Join(tmp, keptStatic)
		if err := zipStatic(r.art.StaticDir, sz); err != nil {
			return err
		}
		if err := store.PutFile(ctx, artifactName(id, keptStatic), sz); err != nil {
			return err
		}
	}
	return store.PutFile(ctx, artifactName(id, keptManifest), r.art.ManifestPath)
}

// FetchArtifact downloads the kept package of release id into dir as a
// build folder (app.zip, release.json, static/), checked like any
// --artifact. found is false when no package is kept for id.
func FetchArtifact(ctx context.Context, static *staticsync.Client, id, dir string) (res *artifact.Result, found bool, err error) {
	store := static.Store()
	ok, err := store.GetFile(ctx, artifactName(id, keptManifest), filepath.Join(dir, artifact.ManifestName))
	if err != nil || !ok {
		return nil, false, err
	}
	if ok, err := store.GetFile(ctx, artifactName(id, keptZip), filepath.Join(dir, artifact.ZipName)); err != nil || !ok {
		if err == nil {
			err = fmt.Errorf("the kept package of release %s has no %s", id, keptZip)
		}
		return nil, true, err
	}
	sz := filepath.Join(dir, keptStatic)
	ok, err = store.GetFile(ctx, artifactName(id, keptStatic), sz)
	if err != nil {
		return nil, true, err
	}
	if ok {
		if err := unzipStatic(sz, filepath.Join(dir, artifact.StaticDir)); err != nil {
			return nil, true, err
		}
		os.Remove(sz)
	}
	res, err = ReadArtifact(dir)
	if err != nil {
		return nil, true, err
	}
	if res.Manifest.ReleaseID != id {
		return nil, true, problem.Failf("delete .djdeploy/"+artifactName(id, "")+" from the state container; djdeploy keeps it again on the next release",
			"the package kept for release %s says it is release %s", id, res.Manifest.ReleaseID)
	}
	return res, true, nil
}

// zipStatic zips every file under dir (static files are kept whole: no
// exclude rule applies to what collectstatic wrote).
func zipStatic(dir, file string) error {
	out, err := os.Create(file)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(out)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		w, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		_, err = io.Copy(w, in)
		return err
	})
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("zipping the static files: %w", err)
	}
	return nil
}

// unzipStatic extracts a kept static.zip (written by artifact.ZipDir)
// into dir, refusing names that would land outside it.
func unzipStatic(file, dir string) error {
	zr, err := zip.OpenReader(file)
	if err != nil {
		return fmt.Errorf("opening the kept static files: %w", err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		name := path.Clean(f.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("the kept static files hold a bad name %q", f.Name)
		}
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if f.FileInfo().IsDir() {
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := extractOne(f, dst); err != nil {
			return err
		}
	}
	return nil
}

func extractOne(f *zip.File, dst string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, rc); err != nil {
		out.Close()
		return fmt.Errorf("extracting %s: %w", f.Name, err)
	}
	return out.Close()
}

// outcomeLive says whether an entry left its release in production.
func outcomeLive(e ledger.Entry) bool { return e.Live && e.Outcome == report.Succeeded }
