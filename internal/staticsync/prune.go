package staticsync

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

const productionName = "production.json"

// ArtifactsDir holds, under .djdeploy/ in the state container, the
// packages of releases that reached production (artifacts/<id>/app.zip,
// release.json, static.zip), so a rollback needs no build folder.
const ArtifactsDir = "artifacts/"

// ProductionHistory is .djdeploy/production.json: the releases that reached
// production, oldest first. Only MarkProduction writes it, after a
// successful swap, so failed releases never enter it.
type ProductionHistory struct {
	Schema   int               `json:"schema"`
	Releases []ProductionEntry `json:"releases"`
}

// ProductionEntry is one release that reached production.
type ProductionEntry struct {
	ReleaseID string    `json:"release_id"`
	At        time.Time `json:"at"`
}

// maxHistory bounds production.json; prune never keeps more than this.
const maxHistory = 200

// MarkProduction records that releaseID now serves production. The release
// command calls it after a successful swap. The release's manifest must
// exist (the release was synced to this container). Concurrent writers are
// safe: the history is updated with an ETag condition and retried.
func (c *Client) MarkProduction(ctx context.Context, releaseID string) error {
	if !ValidReleaseID(releaseID) {
		return problem.Usagef("pass the release id from release.json", "invalid release id %q", releaseID)
	}
	var m Manifest
	_, found, err := c.Store().get(ctx, "releases/"+releaseID+".json", &m)
	if err != nil {
		return err
	}
	if !found {
		return problem.Failf("run 'djdeploy static sync' for this release first",
			"release %s has no manifest in container %s, so its static files were never synced there", releaseID, c.name)
	}
	err = UpdateJSON(ctx, c.Store(), productionName, func(h *ProductionHistory) error {
		if n := len(h.Releases); n > 0 && h.Releases[n-1].ReleaseID == releaseID {
			return errAlreadyLive
		}
		h.Schema = 1
		h.Releases = append(h.Releases, ProductionEntry{ReleaseID: releaseID, At: time.Now().UTC()})
		if len(h.Releases) > maxHistory {
			h.Releases = h.Releases[len(h.Releases)-maxHistory:]
		}
		return nil
	})
	if errors.Is(err, errAlreadyLive) {
		return nil
	}
	return err
}

// errAlreadyLive stops MarkProduction's update: nothing to write.
var errAlreadyLive = errors.New("already the live release")

// History returns the production history, oldest first.
func (c *Client) History(ctx context.Context) ([]ProductionEntry, error) {
	var h ProductionHistory
	if _, _, err := c.Store().get(ctx, productionName, &h); err != nil {
		return nil, err
	}
	return h.Releases, nil
}

// PruneOptions tune Prune.
type PruneOptions struct {
	// Keep protects the last Keep distinct releases that reached production.
	Keep int
	// Grace protects files modified, and releases synced, less than Grace
	// ago: browsers and the CDN still hold pages that reference them.
	Grace time.Duration
	// Protect lists release ids that must keep their files whatever the
	// history says: what production and each slot run now.
	Protect []string
	DryRun  bool

	Lock     *Lock
	Holder   string
	LockWait time.Duration

	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// PruneResult says what Prune deleted (or, with DryRun, would delete).
type PruneResult struct {
	DryRun bool `json:"dry_run"`
	// Protected are the releases whose files were kept, and why.
	Protected map[string]string `json:"protected"`
	// PrunedReleases had their manifests deleted.
	PrunedReleases []string `json:"pruned_releases"`
	// PrunedArtifacts had their kept packages (for rollbacks) deleted.
	PrunedArtifacts []string `json:"pruned_artifacts"`
	Deleted         int      `json:"deleted"`
	DeletedBytes    int64    `json:"deleted_bytes"`
	Kept            int      `json:"kept"`
	Paths           []string `json:"paths"` // deleted blob names
}

// Prune deletes files that no protected release references and that are
// older than the grace period, then the manifests of releases no longer
// protected. It never deletes other .djdeploy/ state.
func (c *Client) Prune(ctx context.Context, opts PruneOptions, rep progress.Reporter) (*PruneResult, error) {
	if rep == nil {
		rep = progress.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Keep < 1 {
		return nil, problem.Usagef("keep at least the live release: --keep 1 or more", "static-keep must be 1 or more, not %d", opts.Keep)
	}
	for _, id := range opts.Protect {
		if !ValidReleaseID(id) {
			return nil, problem.Usagef("pass release ids from release.json", "invalid release id %q in --protect", id)
		}
	}
	if !opts.DryRun && opts.Lock == nil {
		lock, err := AcquireLock(ctx, c, opts.Holder, opts.LockWait, rep)
		if err != nil {
			return nil, err
		}
		defer lock.Release(ctx)
		opts.Lock = lock
	}

	blobs, exists, err := c.list(ctx, c.prefix, false)
	if err != nil {
		return nil, err
	}
	res := &PruneResult{DryRun: opts.DryRun, Protected: map[string]string{}, Paths: []string{}, PrunedReleases: []string{}, PrunedArtifacts: []string{}}
	if !exists {
		return res, nil
	}
	// Another app's prefix inside ours (a container shared by apps, one
	// with no prefix): its files are referenced by its manifests, not
	// ours, and its state is not ours to delete.
	state, err := c.listState(ctx, c.prefix)
	if err != nil {
		return nil, err
	}
	others := otherPrefixes(blobs, c.prefix)
	for _, o := range otherPrefixes(state, c.prefix) {
		if !slices.Contains(others, o) {
			others = append(others, o)
		}
	}
	sort.Strings(others)
	if c.prefix == "" && len(others) > 0 {
		return nil, problem.Usagef("give this app its own static-prefix (e.g. static/), or prune from the prefix that owns the files; nothing was deleted",
			"static-prefix is empty in container %s, where other prefixes keep djdeploy state (%s): a prune here would delete their files",
			c.name, strings.Join(others, ", "))
	}
	for name := range blobs {
		for _, o := range others {
			if strings.HasPrefix(name, o) {
				delete(blobs, name)
				break
			}
		}
	}
	now := opts.Now()
	cutoff := now.Add(-opts.Grace)

	for _, id := range opts.Protect {
		res.Protected[id] = "protected (running now)"
	}
	hist, err := c.History(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := len(hist) - 1; i >= 0 && len(seen) < opts.Keep; i-- {
		id := hist[i].ReleaseID
		if seen[id] {
			continue // a rollback made an older release live again
		}
		seen[id] = true
		if _, ok := res.Protected[id]; !ok {
			res.Protected[id] = "reached production"
		}
	}
	releasesDir := c.legacyMetaName("releases/")
	var manifests []string
	for name, b := range state {
		if !strings.HasPrefix(name, releasesDir) || !strings.HasSuffix(name, ".json") {
			continue
		}
		id := strings.TrimSuffix(strings.TrimPrefix(name, releasesDir), ".json")
		if _, ok := res.Protected[id]; ok {
			continue
		}
		if b.modified.After(cutoff) {
			res.Protected[id] = "synced within the grace period"
			continue
		}
		manifests = append(manifests, id)
	}
	sort.Strings(manifests)
	// Packages kept for rollbacks (artifacts/<id>/...) go with their
	// release: a release prune no longer protects cannot be rolled back to.
	artifactsDir := c.legacyMetaName(ArtifactsDir)
	var artifacts []string
	for name := range state {
		rest, ok := strings.CutPrefix(name, artifactsDir)
		if !ok {
			continue
		}
		id, _, _ := strings.Cut(rest, "/")
		if _, ok := res.Protected[id]; !ok {
			artifacts = append(artifacts, c.metaName(ArtifactsDir+rest))
			if !slices.Contains(res.PrunedArtifacts, id) {
				res.PrunedArtifacts = append(res.PrunedArtifacts, id)
			}
		}
	}
	sort.Strings(artifacts)
	sort.Strings(res.PrunedArtifacts)

	// Every protected release must have a manifest: without one, there is
	// no telling which files it needs, and deleting would be a guess.
	referenced := map[string]bool{}
	for id := range res.Protected {
		var m Manifest
		found, err := c.Store().GetJSON(ctx, "releases/"+id+".json", &m)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, problem.Failf("sync that release's static files first, or leave it out of --protect; nothing was deleted",
				"release %s is protected (%s) but has no manifest in container %s", id, res.Protected[id], c.name)
		}
		for name := range m.Files {
			referenced[name] = true
		}
	}

	metaDir := c.legacyMetaName("")
	var doomed []string
	for name, b := range blobs {
		if strings.HasPrefix(name, metaDir) {
			continue
		}
		if referenced[name] || b.modified.After(cutoff) {
			res.Kept++
			continue
		}
		doomed = append(doomed, name)
		res.DeletedBytes += b.size
	}
	sort.Strings(doomed)
	res.Paths = doomed
	res.Deleted = len(doomed)
	res.PrunedReleases = manifests
	if opts.DryRun || (len(doomed) == 0 && len(manifests) == 0 && len(artifacts) == 0) {
		return res, nil
	}
	rep.Infof("pruning %d files and %d release manifests from %s", len(doomed), len(manifests), c.name)
	if err := c.deleteBlobs(ctx, c.container, doomed, opts.Lock, rep); err != nil {
		return nil, err
	}
	// Manifests go last: if the run dies before, the next prune finds the
	// same releases and finishes the job.
	names := artifacts
	for _, id := range manifests {
		names = append(names, c.metaName("releases/"+id+".json"))
	}
	if err := c.deleteBlobs(ctx, c.state, names, opts.Lock, rep); err != nil {
		return nil, err
	}
	return res, nil
}

// otherPrefixes are the prefixes below prefix that hold another djdeploy
// prefix's state (a "<p>.djdeploy/" folder with p other than prefix).
func otherPrefixes(blobs map[string]*remote, prefix string) []string {
	seen := map[string]bool{}
	for name := range blobs {
		for i := 0; i < len(name); {
			j := strings.Index(name[i:], MetaDir)
			if j < 0 {
				break
			}
			at := i + j
			if at == 0 || name[at-1] == '/' {
				if p := name[:at]; p != prefix && strings.HasPrefix(p, prefix) {
					seen[p] = true
				}
				break
			}
			i = at + 1
		}
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// deleteBlobs deletes in batches of 256 (one request each), falling back
// to single deletes when the service refuses batches (some SAS tokens,
// proxies). A blob already gone is fine.
func (c *Client) deleteBlobs(ctx context.Context, cc *container.Client, names []string, lock *Lock, rep progress.Reporter) error {
	total := int64(len(names))
	var done int64
	for start := 0; start < len(names); start += 256 {
		if lock != nil {
			if err := lock.Err(); err != nil {
				return problem.Wrap(err, "re-run prune", "pruning %s", c.name)
			}
		}
		chunk := names[start:min(start+256, len(names))]
		if err := c.deleteBatch(ctx, cc, chunk); err != nil {
			if errors.Is(err, context.Canceled) {
				return err
			}
			for _, n := range chunk {
				_, derr := cc.NewBlobClient(n).Delete(ctx, nil)
				if derr != nil && !bloberror.HasCode(derr, bloberror.BlobNotFound) {
					return c.explain(derr, "deleting "+n)
				}
			}
		}
		done += int64(len(chunk))
		rep.Count("deleted", done, total)
	}
	return nil
}

func (c *Client) deleteBatch(ctx context.Context, cc *container.Client, names []string) error {
	bb, err := cc.NewBatchBuilder()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := bb.Delete(n, nil); err != nil {
			return err
		}
	}
	resp, err := cc.SubmitBatch(ctx, bb, nil)
	if err != nil {
		return err
	}
	for _, r := range resp.Responses {
		if r.Error != nil && !bloberror.HasCode(r.Error, bloberror.BlobNotFound) {
			return r.Error
		}
	}
	return nil
}
