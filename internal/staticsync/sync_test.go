package staticsync

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var siteFiles = map[string]string{
	"css/site.5f3c2a1b9e7d.css": "body{color:red}",
	"css/site.css":              "body{color:red}",
	"js/app.js":                 "console.log('hi')",
	"js/app.0a1b2c3d4e5f.js":    "console.log('hi')",
	"img/logo.png":              "\x89PNG\r\n\x1a\nnot really",
	"fonts/x.woff2":             "wOF2....",
	"robots.txt":                "User-agent: *",
	"admin/css/base.css":        "h1{}",
}

// TestSyncAgainstAzurite walks one container through the life of a site:
// first upload, nothing changed, one change, changes made behind
// djdeploy's back, a header rule change.
func TestSyncAgainstAzurite(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	cnt := newCounter()
	c := open(t, srv, "static", "assets", cnt)
	dir := t.TempDir()
	writeTree(t, dir, siteFiles)
	hdr := Headers{Rules: []HeaderRule{{Glob: "robots.txt", CacheControl: "no-cache"}}}

	// Cold: every file uploaded with its MD5, type and cache control.
	res, err := c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr, Holder: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != len(siteFiles) || res.Skipped != 0 || !res.ContainerCreated || !res.ManifestWritten {
		t.Fatalf("cold sync: %+v", res)
	}
	wantCT := map[string]string{
		"css/site.5f3c2a1b9e7d.css": "text/css; charset=utf-8", "css/site.css": "text/css; charset=utf-8",
		"js/app.js": "text/javascript; charset=utf-8", "js/app.0a1b2c3d4e5f.js": "text/javascript; charset=utf-8",
		"img/logo.png": "image/png", "fonts/x.woff2": "font/woff2", "robots.txt": "text/plain; charset=utf-8",
		"admin/css/base.css": "text/css; charset=utf-8",
	}
	wantCC := map[string]string{
		"css/site.5f3c2a1b9e7d.css": ImmutableCacheControl, "js/app.0a1b2c3d4e5f.js": ImmutableCacheControl,
		"robots.txt": "no-cache",
	}
	for rel, content := range siteFiles {
		st, ok := getBlob(t, c, "assets/"+rel)
		if !ok {
			t.Fatalf("%s not uploaded", rel)
		}
		if string(st.data) != content {
			t.Errorf("%s: content %q", rel, st.data)
		}
		if st.md5 != b64md5([]byte(content)) || st.metaMD5 != st.md5 {
			t.Errorf("%s: Content-MD5 %q, metadata %q, want %q", rel, st.md5, st.metaMD5, b64md5([]byte(content)))
		}
		if st.ct != wantCT[rel] {
			t.Errorf("%s: Content-Type %q, want %q", rel, st.ct, wantCT[rel])
		}
		cc := wantCC[rel]
		if cc == "" {
			cc = DefaultCacheControl
		}
		if st.cc != cc {
			t.Errorf("%s: Cache-Control %q, want %q", rel, st.cc, cc)
		}
	}
	for _, p := range res.PurgePaths {
		if strings.Contains(p, "5f3c2a1b9e7d") || strings.Contains(p, "0a1b2c3d4e5f") {
			t.Errorf("hashed name %s in purge paths", p)
		}
	}
	if !slices.Contains(res.PurgePaths, "/assets/css/site.css") || len(res.PurgePaths) != len(siteFiles)-2 {
		t.Errorf("purge paths: %v", res.PurgePaths)
	}
	var m Manifest
	if found, err := c.Store().GetJSON(ctx, "releases/"+res.ReleaseID+".json", &m); err != nil || !found {
		t.Fatalf("manifest: found=%v err=%v", found, err)
	}
	if len(m.Files) != len(siteFiles) || m.Files["assets/js/app.js"] != b64md5([]byte(siteFiles["js/app.js"])) {
		t.Errorf("manifest files: %v", m.Files)
	}
	cnt.take()

	// Warm: one list request and one look at the release's manifest in the
	// private state container, nothing else (no lock, no writes).
	res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cnt.take(); res.Uploaded != 0 || res.Skipped != len(siteFiles) || len(got) != 2 || got["GET list"] != 1 || got["HEAD blob"] != 1 {
		t.Fatalf("warm sync: uploaded %d skipped %d, requests %v; want one list, one HEAD and nothing else", res.Uploaded, res.Skipped, got)
	}

	// One changed file: exactly one Put Blob (plus lock, listing, manifest).
	writeTree(t, dir, map[string]string{"js/app.js": "console.log('changed')"})
	res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cnt.take()
	if res.Uploaded != 1 || !slices.Equal(res.Changed, []string{"/assets/js/app.js"}) || !slices.Equal(res.PurgePaths, res.Changed) {
		t.Fatalf("one change: %+v", res)
	}
	// PUT blob: the file and the manifest.
	if got["PUT blob"] != 2 || got["PUT block"] != 0 {
		t.Errorf("one change sent %v; want 2 Put Blob (file + manifest)", got)
	}
	if st, _ := getBlob(t, c, "assets/js/app.js"); string(st.data) != "console.log('changed')" {
		t.Errorf("changed file not uploaded: %q", st.data)
	}

	// Behind djdeploy's back: one blob deleted, one overwritten with other
	// bytes of the same size, one with another tool's headers. The listing
	// is the truth, so the next sync restores all three.
	if _, err := c.container.NewBlobClient("assets/css/site.css").Delete(ctx, nil); err != nil {
		t.Fatal(err)
	}
	putOutOfBand(t, c, "assets/robots.txt", strings.Repeat("x", len(siteFiles["robots.txt"])))
	putOutOfBand(t, c, "assets/img/logo.png", siteFiles["img/logo.png"]) // same bytes, headers lost
	res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 2 || res.HeadersUpdated != 1 {
		t.Fatalf("out-of-band changes: uploaded %d, headers %d; want 2 and 1 (%v)", res.Uploaded, res.HeadersUpdated, res.Changed)
	}
	for _, rel := range []string{"css/site.css", "robots.txt", "img/logo.png"} {
		st, ok := getBlob(t, c, "assets/"+rel)
		if !ok || string(st.data) != siteFiles[rel] || st.ct != wantCT[rel] || st.md5 != b64md5([]byte(siteFiles[rel])) {
			t.Errorf("%s not restored: %+v", rel, st)
		}
	}

	// A changed header rule updates properties only.
	hdr.CacheControl = "public, max-age=60"
	res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 0 || res.HeadersUpdated != len(siteFiles)-3 {
		t.Fatalf("cache-control change: %+v", res)
	}
	if st, _ := getBlob(t, c, "assets/css/site.css"); st.cc != "public, max-age=60" || st.md5 != b64md5([]byte(siteFiles["css/site.css"])) {
		t.Errorf("after header update: %+v", st)
	}

	// Dry run: a plan and no request but the listing and a look for the
	// release's manifest.
	writeTree(t, dir, map[string]string{"new.txt": "new"})
	cnt.take()
	res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: hdr, DryRun: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cnt.take(); res.Uploaded != 1 || len(got) != 2 || got["GET list"] != 1 || got["HEAD blob"] != 1 {
		t.Fatalf("dry run: %+v, requests %v", res, got)
	}
	if _, ok := getBlob(t, c, "assets/new.txt"); ok {
		t.Fatal("dry run uploaded a file")
	}
}

// TestSyncLargeFileInBlocks: a file above the single-upload limit goes up
// in blocks and still gets Content-MD5 (Put Block List computes none).
func TestSyncLargeFileInBlocks(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	cnt := newCounter()
	c := open(t, srv, "big", "", cnt)
	dir := t.TempDir()
	data := make([]byte, 300<<10+17)
	_, _ = rand.Read(data)
	if err := os.WriteFile(filepath.Join(dir, "video.mp4"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	opts := SyncOptions{SingleUploadMax: 64 << 10, BlockSize: 64 << 10}
	if _, err := c.Sync(ctx, readSource(t, dir), opts, nil); err != nil {
		t.Fatal(err)
	}
	got := cnt.take()
	if got["PUT block"] != 5 || got["PUT blocklist"] != 1 {
		t.Errorf("requests %v; want 5 Put Block and 1 Put Block List", got)
	}
	st, _ := getBlob(t, c, "video.mp4")
	if !bytes.Equal(st.data, data) || st.md5 != b64md5(data) || st.ct != "video/mp4" {
		t.Fatalf("block upload: md5 %q want %q, type %q, %d bytes", st.md5, b64md5(data), st.ct, len(st.data))
	}
	res, err := c.Sync(ctx, readSource(t, dir), opts, nil)
	if err != nil || res.Uploaded != 0 {
		t.Fatalf("second sync of a block blob uploaded again: %+v %v", res, err)
	}
}

// TestSyncGzip: text is stored compressed with Content-Encoding, the rest
// as is; a second run uploads nothing; an overwrite by another tool is seen.
func TestSyncGzip(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	c := open(t, srv, "gzipped", "", newCounter())
	dir := t.TempDir()
	css := strings.Repeat("body { color: red; }\n", 200)
	writeTree(t, dir, map[string]string{"site.css": css, "logo.png": "PNGDATA", "tiny.js": "x"})
	h := Headers{Compress: "gzip"}
	if _, err := c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: h}, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := getBlob(t, c, "site.css")
	if st.enc != "gzip" || len(st.data) >= len(css) || st.md5 != b64md5(st.data) || st.metaMD5 != b64md5([]byte(css)) {
		t.Fatalf("site.css: encoding %q, %d bytes, md5 %q (stored bytes %q), source md5 %q", st.enc, len(st.data), st.md5, b64md5(st.data), st.metaMD5)
	}
	zr, err := gzip.NewReader(bytes.NewReader(st.data))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	if string(plain) != css {
		t.Fatal("gzip blob does not decompress to the file")
	}
	if st, _ := getBlob(t, c, "logo.png"); st.enc != "" || string(st.data) != "PNGDATA" {
		t.Errorf("png compressed: %+v", st)
	}
	// "x" does not shrink: stored plain, still recognised next time.
	if st, _ := getBlob(t, c, "tiny.js"); st.enc != "" || string(st.data) != "x" {
		t.Errorf("tiny.js: %+v", st)
	}
	res, err := c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: h}, nil)
	if err != nil || res.Uploaded != 0 || res.HeadersUpdated != 0 {
		t.Fatalf("warm gzip sync: %+v %v", res, err)
	}
	putOutOfBand(t, c, "site.css", css)
	if res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{Headers: h}, nil); err != nil || res.Uploaded != 1 {
		t.Fatalf("overwritten gzip blob not re-uploaded: %+v %v", res, err)
	}
	// Turning compression off stores plain bytes again.
	if res, err = c.Sync(ctx, readSource(t, dir), SyncOptions{}, nil); err != nil || res.Uploaded != 1 { // tiny.js is already stored plain
		t.Fatalf("compression off: %+v %v", res, err)
	}
	if st, _ := getBlob(t, c, "site.css"); st.enc != "" || string(st.data) != css {
		t.Errorf("site.css after compression off: encoding %q", st.enc)
	}
}

// TestSyncUsesReleaseJSON: hashed flags and MD5s come from release.json;
// a size that disagrees with it is an error before anything is sent.
func TestSyncUsesReleaseJSON(t *testing.T) {
	srv := startAzurite(t)
	ctx := context.Background()
	c := open(t, srv, "rel", "", nil)
	out := t.TempDir()
	dir := filepath.Join(out, "static")
	writeTree(t, dir, map[string]string{"a.css": "a{}", "b.js": "b()"})
	rj := `{"schema":1,"release_id":"abc123","static":[
	 {"path":"a.css","size":3,"md5":"` + b64md5([]byte("a{}")) + `","content_type":"text/css; charset=utf-8","hashed":true},
	 {"path":"b.js","size":3,"md5":"` + b64md5([]byte("b()")) + `","content_type":"text/javascript; charset=utf-8","hashed":false}]}`
	writeTree(t, out, map[string]string{"release.json": rj})
	src := readSource(t, dir) // release.json found beside the folder
	if src.ReleaseID != "abc123" || src.Manifest != "release.json" {
		t.Fatalf("release.json not used: %+v", src)
	}
	res, err := c.Sync(ctx, src, SyncOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := getBlob(t, c, "a.css"); st.cc != ImmutableCacheControl {
		t.Errorf("a.css hashed per release.json, got Cache-Control %q", st.cc)
	}
	if !slices.Equal(res.PurgePaths, []string{"/b.js"}) || res.Manifest != c.name+"/.djdeploy/releases/abc123.json" {
		t.Errorf("result: %+v", res)
	}

	writeTree(t, dir, map[string]string{"b.js": "b(); // grown"})
	_, err = ReadSource(ctx, dir, "")
	if err == nil || !strings.Contains(err.Error(), "size is") {
		t.Fatalf("size mismatch with release.json: %v", err)
	}
}
