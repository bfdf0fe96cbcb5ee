package staticsync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
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
	after := blobNames(t, c)
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
