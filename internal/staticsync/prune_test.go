package staticsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// syncRelease syncs a release made of shared files plus its own.
func syncRelease(t *testing.T, c *Client, id string, own ...string) {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"common.css": "shared by all"}
	for _, f := range own {
		files[f] = "content of " + f
	}
	writeTree(t, dir, files)
	if _, err := c.Sync(context.Background(), readSource(t, dir), SyncOptions{ReleaseID: id}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestPrune(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	cnt := newCounter()
	c := open(t, srv, "static", "site", cnt)

	// Three releases reached production, then four failed (synced, never
	// marked). The live one is r3.
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("r%d", i)
		syncRelease(t, c, id, fmt.Sprintf("app.%08d.js", i))
		if err := c.MarkProduction(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4; i++ {
		syncRelease(t, c, fmt.Sprintf("failed%d", i), fmt.Sprintf("app.%08d.js", 100+i))
	}
	putOutOfBand(t, c, "site/stray.txt", "left by hand")
	if err := c.MarkProduction(ctx, "never-synced"); err == nil {
		t.Fatal("MarkProduction accepted a release without a manifest")
	}

	// Within the grace period nothing goes, even unprotected files.
	res, err := c.Prune(ctx, PruneOptions{Keep: 1, Grace: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 0 || len(res.PrunedReleases) != 0 {
		t.Fatalf("prune within grace deleted %v / %v", res.Paths, res.PrunedReleases)
	}

	later := func() time.Time { return time.Now().Add(2 * time.Hour) }
	// Dry run: the plan, nothing deleted.
	before := blobNames(t, c)
	res, err = c.Prune(ctx, PruneOptions{Keep: 2, Grace: time.Hour, Protect: []string{"failed4"}, DryRun: true, Now: later}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantGone := []string{"site/app.00000001.js", "site/app.00000101.js", "site/app.00000102.js", "site/app.00000103.js", "site/stray.txt"}
	if !slices.Equal(res.Paths, wantGone) {
		t.Fatalf("dry-run plan %v, want %v", res.Paths, wantGone)
	}
	if !slices.Equal(before, blobNames(t, c)) {
		t.Fatal("dry run deleted blobs")
	}

	// Keep 2 production releases plus the protected failed4.
	cnt.take()
	res, err = c.Prune(ctx, PruneOptions{Keep: 2, Grace: time.Hour, Protect: []string{"failed4"}, Now: later}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Paths, wantGone) || !slices.Equal(res.PrunedReleases, []string{"failed1", "failed2", "failed3", "r1"}) {
		t.Fatalf("prune deleted %v and releases %v", res.Paths, res.PrunedReleases)
	}
	if got := cnt.take(); got["POST batch"] != 2 || got["DELETE blob"] != 0 {
		t.Errorf("deletes were not batched: %v", got)
	}
	after := append(blobNames(t, c), stateNames(t, c)...)
	for _, keep := range []string{"site/common.css", "site/app.00000002.js", "site/app.00000003.js", "site/app.00000104.js",
		"site/.djdeploy/production.json", "site/.djdeploy/lock", "site/.djdeploy/releases/r2.json", "site/.djdeploy/releases/r3.json", "site/.djdeploy/releases/failed4.json"} {
		if !slices.Contains(after, keep) {
			t.Errorf("%s was pruned", keep)
		}
	}
	for _, gone := range append(wantGone, "site/.djdeploy/releases/r1.json", "site/.djdeploy/releases/failed1.json") {
		if slices.Contains(after, gone) {
			t.Errorf("%s survived", gone)
		}
	}

	// A series of failed releases never pushes the live one out: with
	// keep 1, r3 (live) keeps its files though five releases came after.
	for i := 5; i <= 9; i++ {
		syncRelease(t, c, fmt.Sprintf("failed%d", i), fmt.Sprintf("app.%08d.js", 100+i))
	}
	res, err = c.Prune(ctx, PruneOptions{Keep: 1, Grace: time.Hour, Now: later}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after = blobNames(t, c)
	if !slices.Contains(after, "site/app.00000003.js") || !slices.Contains(after, "site/common.css") {
		t.Fatalf("live release's files pruned after failed releases: %v", res.Paths)
	}
	if slices.Contains(after, "site/app.00000002.js") || slices.Contains(after, "site/app.00000109.js") {
		t.Errorf("unprotected files survived: %v", after)
	}
	if res.Protected["r3"] != "reached production" || len(res.Protected) != 1 {
		t.Errorf("protected: %v", res.Protected)
	}

	// A protected release without a manifest stops prune before deleting.
	syncRelease(t, c, "r4", "app.00000004.js")
	_, err = c.Prune(ctx, PruneOptions{Keep: 1, Protect: []string{"ghost"}, Now: later}, nil)
	if err == nil || !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("prune with an unknown protected release: %v", err)
	}
	if !slices.Contains(blobNames(t, c), "site/app.00000004.js") {
		t.Error("prune deleted files before refusing")
	}
}

// TestPruneStaysInItsPrefix: apps sharing a container (issue 12's
// reproduction 7). A prune never deletes another prefix's files or state,
// and one at an empty prefix, above other apps' state, is refused.
func TestPruneStaysInItsPrefix(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	root := open(t, srv, "shared", "", nil)
	outer := open(t, srv, "shared", "a", nil)
	inner := open(t, srv, "shared", "a/y", nil)
	for _, c := range []*Client{root, outer, inner} {
		syncRelease(t, c, "old", "old.11111111.js")
		syncRelease(t, c, "live", "live.22222222.js")
		if err := c.MarkProduction(ctx, "live"); err != nil {
			t.Fatal(err)
		}
	}
	before := append(blobNames(t, root), stateNames(t, root)...)
	later := func() time.Time { return time.Now().Add(48 * time.Hour) }

	_, err := root.Prune(ctx, PruneOptions{Keep: 1, Now: later}, nil)
	if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(p.What, "a/") || !strings.Contains(p.Fix, "static-prefix") {
		t.Fatalf("prune at the empty prefix of a shared container: %v, want a usage error naming a/", err)
	}
	if after := append(blobNames(t, root), stateNames(t, root)...); !slices.Equal(before, after) {
		t.Fatalf("the refused prune deleted blobs: before %v, after %v", before, after)
	}

	// a/ prunes its own old release, and nothing below a/y/.
	res, err := outer.Prune(ctx, PruneOptions{Keep: 1, Now: later}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Paths, []string{"a/old.11111111.js"}) || !slices.Equal(res.PrunedReleases, []string{"old"}) {
		t.Fatalf("prune of a/ deleted %v and releases %v; want only a/old.11111111.js and old", res.Paths, res.PrunedReleases)
	}
	after := append(blobNames(t, root), stateNames(t, root)...)
	for _, name := range before {
		if strings.HasPrefix(name, "a/y/") && !slices.Contains(after, name) {
			t.Errorf("prune of a/ deleted %s of prefix a/y/", name)
		}
	}
	if !slices.Contains(after, "a/y/old.11111111.js") || !slices.Contains(after, "a/y/.djdeploy/production.json") {
		t.Errorf("a/y/ lost its files or state: %v", after)
	}
}
