package staticsync

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/streaming"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/webfiles"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/errgroup"
)

// Metadata keys djdeploy writes on every file blob. Lowercase: metadata
// names are matched case-insensitively and some SDKs change their case.
const (
	metaMD5      = "djdeploy_md5"      // MD5 of the source file (base64)
	metaCompress = "djdeploy_compress" // "gzip" when compression was asked for
	metaStored   = "djdeploy_stored"   // MD5 of the stored bytes when compressed
)

// Defaults for SyncOptions.
const (
	DefaultConcurrency     = 32
	DefaultBlockSize       = 8 << 20
	DefaultSingleUploadMax = 32 << 20
)

// SyncOptions tune Sync.
type SyncOptions struct {
	Headers     Headers
	Concurrency int // files uploaded at once (DefaultConcurrency)
	DryRun      bool

	// Lock is a lock the caller (the release command) already holds. When
	// nil, Sync takes the lock itself, and only if it has something to write.
	Lock     *Lock
	Holder   string        // who this run is, recorded in the lock
	LockWait time.Duration // how long to wait for another holder

	// ReleaseID overrides the source's release id.
	ReleaseID string

	// DeferOverwrites leaves alone the existing names without a content
	// hash whose content or headers would change (site.css, robots.txt,
	// staticfiles.json): their URLs keep serving what the live release
	// serves until a later sync without it, after the swap. New names and
	// content-hashed names upload as usual.
	DeferOverwrites bool

	// Files larger than SingleUploadMax go up in blocks of BlockSize,
	// BlockConcurrency at a time; smaller ones in one Put Blob.
	BlockSize        int64
	SingleUploadMax  int64
	BlockConcurrency int
}

// Result is what a sync did (or, with DryRun, would do).
type Result struct {
	ReleaseID string `json:"release_id"`
	Container string `json:"container"`
	Prefix    string `json:"prefix"`
	DryRun    bool   `json:"dry_run"`

	Files          int   `json:"files"`
	Bytes          int64 `json:"bytes"`
	Uploaded       int   `json:"uploaded"`
	UploadedBytes  int64 `json:"uploaded_bytes"` // size of the source files uploaded
	Skipped        int   `json:"skipped"`
	SkippedBytes   int64 `json:"skipped_bytes"`
	HeadersUpdated int   `json:"headers_updated"`

	// Changed lists every path whose blob was uploaded or whose headers
	// changed, as URL paths below the container ("/" + prefix + path).
	Changed []string `json:"changed"`
	// PurgePaths is the subset a CDN purge needs: changed paths whose names
	// carry no content hash. (Hashed names are new URLs; nothing cached them.)
	PurgePaths []string `json:"purge_paths"`
	// Deferred are the paths DeferOverwrites left for a later sync.
	Deferred []string `json:"deferred,omitempty"`

	ContainerCreated bool   `json:"container_created"`
	ManifestWritten  bool   `json:"manifest_written"`
	Manifest         string `json:"manifest"` // blob name of the release manifest
	HashSource       string `json:"hash_source,omitempty"`
}

// Manifest is a release's file list, kept in the container as
// .djdeploy/releases/<id>.json. Prune keeps every file a protected
// release's manifest names.
type Manifest struct {
	Schema    int               `json:"schema"`
	ReleaseID string            `json:"release_id"`
	Created   time.Time         `json:"created"`
	Prefix    string            `json:"prefix"`
	Files     map[string]string `json:"files"` // blob name -> MD5 of the source file (base64)
}

// remote is one listed blob.
type remote struct {
	size     int64
	md5      []byte
	ct, cc   string
	enc      string
	srcMD5   string
	compress string
	stored   string
	modified time.Time
}

type action int

const (
	actSkip action = iota
	actUpload
	actHeaders
	actDefer // a change to an existing un-hashed name, left for later
)

type item struct {
	f       *File
	blob    string
	ct, cc  string
	gzip    bool
	act     action
	current *remote
}

// Sync uploads src to the container: new and changed files only, decided
// by content. It never deletes. It writes the release manifest last, so a
// manifest in the container means every file it names was uploaded.
func (c *Client) Sync(ctx context.Context, src *Source, opts SyncOptions, rep progress.Reporter) (*Result, error) {
	if rep == nil {
		rep = progress.Discard
	}
	opts.defaults()
	id := src.ReleaseID
	if opts.ReleaseID != "" {
		id = opts.ReleaseID
	}
	if !ValidReleaseID(id) {
		return nil, problem.Usagef("use letters, digits, '-', '_' and '.' only", "invalid release id %q", id)
	}
	res := &Result{ReleaseID: id, Container: c.name, Prefix: c.prefix, DryRun: opts.DryRun, Manifest: c.metaName("releases/" + id + ".json"), HashSource: src.Manifest}
	for _, f := range src.Files {
		res.Files++
		res.Bytes += f.Size
	}

	blobs, exists, err := c.list(ctx, c.prefix, true)
	if err != nil {
		return nil, err
	}
	items := c.plan(src, blobs, opts)
	manifestExists, err := c.stateExists(ctx, "releases/"+id+".json")
	if err != nil {
		return nil, err
	}
	_, legacyManifest := blobs[c.legacyMetaName("releases/"+id+".json")]
	manifestExists = manifestExists || legacyManifest
	if opts.DryRun || (!needsWork(items) && manifestExists) {
		if !exists {
			rep.Infof("container %s does not exist; a sync creates it (private)", c.name)
		}
		res.tally(items)
		return res, nil
	}

	lock := opts.Lock
	if lock == nil {
		if !exists {
			if res.ContainerCreated, err = c.createContainer(ctx); err != nil {
				return nil, err
			}
		}
		lock, err = AcquireLock(ctx, c, opts.Holder, opts.LockWait, rep)
		if err != nil {
			return nil, err
		}
		defer lock.Release(ctx)
		// Another release may have changed the container while we waited:
		// plan again from a listing taken under the lock.
		if blobs, _, err = c.list(ctx, c.prefix, true); err != nil {
			return nil, err
		}
		items = c.plan(src, blobs, opts)
		if manifestExists, err = c.stateExists(ctx, "releases/"+id+".json"); err != nil {
			return nil, err
		}
	} else if !exists {
		if res.ContainerCreated, err = c.createContainer(ctx); err != nil {
			return nil, err
		}
	}
	res.tally(items)

	if err := c.execute(ctx, items, opts, lock, rep); err != nil {
		return nil, err
	}
	if err := lock.Err(); err != nil {
		return nil, problem.Wrap(err, "re-run the sync; another release may have taken over the container", "syncing %s", c.name)
	}
	if res.Uploaded > 0 || res.HeadersUpdated > 0 || !manifestExists {
		m := Manifest{Schema: 1, ReleaseID: id, Created: time.Now().UTC(), Prefix: c.prefix, Files: make(map[string]string, len(items))}
		for _, it := range items {
			m.Files[it.blob] = base64.StdEncoding.EncodeToString(it.f.MD5)
		}
		if _, err := c.Store().put(ctx, "releases/"+id+".json", m, nil); err != nil {
			return nil, c.explain(err, "writing the release manifest")
		}
		res.ManifestWritten = true
	}
	return res, nil
}

func (o *SyncOptions) defaults() {
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.SingleUploadMax <= 0 {
		o.SingleUploadMax = DefaultSingleUploadMax
	}
	if o.BlockConcurrency <= 0 {
		o.BlockConcurrency = 4
	}
}

func needsWork(items []*item) bool {
	for _, it := range items {
		if it.act == actUpload || it.act == actHeaders {
			return true
		}
	}
	return false
}

func (r *Result) tally(items []*item) {
	r.Uploaded, r.UploadedBytes, r.Skipped, r.SkippedBytes, r.HeadersUpdated = 0, 0, 0, 0, 0
	r.Changed, r.PurgePaths, r.Deferred = []string{}, []string{}, nil
	for _, it := range items {
		switch it.act {
		case actDefer:
			r.Deferred = append(r.Deferred, "/"+it.blob)
			continue
		case actSkip:
			r.Skipped++
			r.SkippedBytes += it.f.Size
			continue
		case actUpload:
			r.Uploaded++
			r.UploadedBytes += it.f.Size
		case actHeaders:
			r.HeadersUpdated++
		}
		r.Changed = append(r.Changed, "/"+it.blob)
		if !it.f.Hashed {
			r.PurgePaths = append(r.PurgePaths, "/"+it.blob)
		}
	}
}

// list returns the blobs under prefix, 5000 a page, with metadata. A
// missing container lists as empty with exists false.
func (c *Client) list(ctx context.Context, prefix string, withMeta bool) (map[string]*remote, bool, error) {
	return c.listIn(ctx, c.container, prefix, withMeta)
}

func (c *Client) listIn(ctx context.Context, cc *container.Client, prefix string, withMeta bool) (map[string]*remote, bool, error) {
	out := map[string]*remote{}
	pager := cc.NewListBlobsFlatPager(&container.ListBlobsFlatOptions{
		Prefix:     to.Ptr(prefix),
		MaxResults: to.Ptr(int32(5000)),
		Include:    container.ListBlobsInclude{Metadata: withMeta},
	})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if bloberror.HasCode(err, bloberror.ContainerNotFound) {
				return out, false, nil
			}
			name := c.name
			if cc == c.state {
				name = StateContainer
			}
			return nil, false, c.explain(err, fmt.Sprintf("listing blobs in container %s", name))
		}
		if page.Segment == nil {
			continue
		}
		for _, b := range page.Segment.BlobItems {
			if b.Name == nil || b.Properties == nil {
				continue
			}
			p := b.Properties
			r := &remote{md5: p.ContentMD5, ct: deref(p.ContentType), cc: deref(p.CacheControl), enc: deref(p.ContentEncoding)}
			if p.ContentLength != nil {
				r.size = *p.ContentLength
			}
			if p.LastModified != nil {
				r.modified = *p.LastModified
			}
			for k, v := range b.Metadata {
				switch strings.ToLower(k) {
				case metaMD5:
					r.srcMD5 = deref(v)
				case metaCompress:
					r.compress = deref(v)
				case metaStored:
					r.stored = deref(v)
				}
			}
			out[*b.Name] = r
		}
	}
	return out, true, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// plan compares every local file with its blob. Content decides (size and
// MD5 against the listing, which is the truth: a blob changed or deleted
// outside djdeploy is uploaded again); headers that differ alone are fixed
// with one Set Blob Properties instead of an upload.
func (c *Client) plan(src *Source, blobs map[string]*remote, opts SyncOptions) []*item {
	h := opts.Headers
	items := make([]*item, 0, len(src.Files))
	for _, f := range src.Files {
		it := &item{f: f, blob: c.blobName(f.Rel), ct: webfiles.ContentType(f.Rel), cc: h.cacheControl(f.Rel, f.Hashed), gzip: h.compress(f.Rel)}
		r := blobs[it.blob]
		it.current = r
		switch {
		case r == nil || !sameContent(f, r, it.gzip):
			it.act = actUpload
		case r.ct != it.ct || r.cc != it.cc:
			it.act = actHeaders
		}
		if opts.DeferOverwrites && it.act != actSkip && r != nil && !f.Hashed {
			it.act = actDefer
		}
		items = append(items, it)
	}
	return items
}

func sameContent(f *File, r *remote, gz bool) bool {
	if r.md5 == nil {
		return false
	}
	if !gz {
		return r.enc == "" && r.size == f.Size && bytes.Equal(r.md5, f.MD5)
	}
	// Compressed (or stored plain because gzip did not help): the source
	// MD5 is in metadata, and the stored bytes' MD5 must still be the one
	// djdeploy wrote, so an overwrite by another tool is noticed.
	return r.compress == "gzip" && r.srcMD5 == base64.StdEncoding.EncodeToString(f.MD5) &&
		r.stored == base64.StdEncoding.EncodeToString(r.md5)
}

// execute runs uploads and header fixes on a bounded pool.
func (c *Client) execute(ctx context.Context, items []*item, opts SyncOptions, lock *Lock, rep progress.Reporter) error {
	var todo []*item
	for _, it := range items {
		if it.act == actUpload || it.act == actHeaders {
			todo = append(todo, it)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// Big files first, so a long upload does not start last and hold the
	// whole run up.
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].f.Size > todo[j].f.Size })
	rep.Infof("uploading %d of %d files to %s", len(todo), len(items), c.URL()+"/"+c.prefix)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Concurrency)
	var done atomic.Int64
	total := int64(len(todo))
	for _, it := range todo {
		if gctx.Err() != nil || lock.Err() != nil {
			break
		}
		g.Go(func() error {
			var err error
			if it.act == actHeaders {
				err = c.setHeaders(gctx, it)
			} else {
				err = c.upload(gctx, it, opts)
			}
			if err != nil {
				return err
			}
			rep.Count("files", done.Add(1), total)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return lock.Err()
}

func (c *Client) setHeaders(ctx context.Context, it *item) error {
	// Set Blob Properties clears every header it is not given: resend the
	// encoding and MD5 the blob already has.
	_, err := c.container.NewBlobClient(it.blob).SetHTTPHeaders(ctx, blob.HTTPHeaders{
		BlobContentType:     to.Ptr(it.ct),
		BlobCacheControl:    to.Ptr(it.cc),
		BlobContentEncoding: nonEmpty(it.current.enc),
		BlobContentMD5:      it.current.md5,
	}, nil)
	return c.explain(err, "setting headers of "+it.blob)
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// upload sends one file. The MD5 goes in Content-MD5 on every upload,
// block uploads included (Put Block List does not compute one), and in
// metadata.
func (c *Client) upload(ctx context.Context, it *item, opts SyncOptions) error {
	f, err := os.Open(it.f.Abs)
	if err != nil {
		return problem.Wrap(err, "check the file's permissions", "opening %s", it.f.Abs)
	}
	defer f.Close()

	var body io.ReaderAt = f
	size, sum := it.f.Size, it.f.MD5
	enc := ""
	md := map[string]*string{metaMD5: to.Ptr(base64.StdEncoding.EncodeToString(it.f.MD5))}
	if it.gzip {
		zb, zsize, zsum, cleanup, err := gzipFile(f, it.f.Size)
		if err != nil {
			return fmt.Errorf("compressing %s: %w", it.f.Abs, err)
		}
		defer cleanup()
		md[metaCompress] = to.Ptr("gzip")
		if zsize < size {
			body, size, sum, enc = zb, zsize, zsum, "gzip"
		}
		md[metaStored] = to.Ptr(base64.StdEncoding.EncodeToString(sum))
	}
	headers := &blob.HTTPHeaders{
		BlobContentType:     to.Ptr(it.ct),
		BlobCacheControl:    to.Ptr(it.cc),
		BlobContentEncoding: nonEmpty(enc),
		BlobContentMD5:      sum,
	}
	bb := c.container.NewBlockBlobClient(it.blob)
	if size <= opts.SingleUploadMax {
		// One Put Blob; the service checks the bytes against Content-MD5.
		_, err = bb.Upload(ctx, streaming.NopCloser(io.NewSectionReader(body, 0, size)), &blockblob.UploadOptions{
			HTTPHeaders: headers, Metadata: md,
		})
	} else {
		err = c.uploadBlocks(ctx, bb, body, size, headers, md, opts)
	}
	if err != nil {
		if bloberror.HasCode(err, bloberror.MD5Mismatch) {
			return problem.Failf("the file changed while it was uploaded, or release.json is stale: rebuild and sync again",
				"uploading %s: its content does not match its MD5", it.f.Rel)
		}
		return c.explain(err, "uploading "+it.f.Rel)
	}
	return nil
}

// uploadBlocks stages a large file in blocks read straight from the file
// (no buffers), then commits the list with the whole file's Content-MD5.
func (c *Client) uploadBlocks(ctx context.Context, bb *blockblob.Client, body io.ReaderAt, size int64, headers *blob.HTTPHeaders, md map[string]*string, opts SyncOptions) error {
	n := int((size + opts.BlockSize - 1) / opts.BlockSize)
	if n > 50000 {
		return problem.Failf("raise the block size", "file of %d bytes needs more than 50,000 blocks", size)
	}
	// Block ids must have equal length; a per-upload nonce keeps two
	// concurrent uploads of the same blob from mixing their blocks.
	nonce := time.Now().UnixNano()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%016x-%06d", nonce, i))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.BlockConcurrency)
	for i := range ids {
		g.Go(func() error {
			off := int64(i) * opts.BlockSize
			l := min(opts.BlockSize, size-off)
			_, err := bb.StageBlock(gctx, ids[i], streaming.NopCloser(io.NewSectionReader(body, off, l)), nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	_, err := bb.CommitBlockList(ctx, ids, &blockblob.CommitBlockListOptions{HTTPHeaders: headers, Metadata: md})
	return err
}

// gzipFile compresses f into memory (small files) or a temporary file, so
// its stored size and MD5 are known before the upload starts.
func gzipFile(f *os.File, size int64) (io.ReaderAt, int64, []byte, func(), error) {
	h := md5.New()
	if size <= 4<<20 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(io.MultiWriter(&buf, h), gzip.BestCompression)
		if _, err := io.Copy(zw, io.NewSectionReader(f, 0, size)); err != nil {
			return nil, 0, nil, nil, err
		}
		if err := zw.Close(); err != nil {
			return nil, 0, nil, nil, err
		}
		return bytes.NewReader(buf.Bytes()), int64(buf.Len()), h.Sum(nil), func() {}, nil
	}
	tmp, err := os.CreateTemp("", "djdeploy-gz-")
	if err != nil {
		return nil, 0, nil, nil, err
	}
	cleanup := func() { tmp.Close(); os.Remove(tmp.Name()) }
	zw, _ := gzip.NewWriterLevel(io.MultiWriter(tmp, h), gzip.BestCompression)
	if _, err := io.Copy(zw, io.NewSectionReader(f, 0, size)); err != nil {
		cleanup()
		return nil, 0, nil, nil, err
	}
	if err := zw.Close(); err != nil {
		cleanup()
		return nil, 0, nil, nil, err
	}
	st, err := tmp.Stat()
	if err != nil {
		cleanup()
		return nil, 0, nil, nil, err
	}
	return tmp, st.Size(), h.Sum(nil), cleanup, nil
}

// createContainer creates the container, private. It reports whether it
// created it (false when it already existed).
func (c *Client) createContainer(ctx context.Context) (bool, error) {
	_, err := c.container.Create(ctx, nil)
	if err == nil {
		return true, nil
	}
	if bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return false, nil
	}
	return false, c.explain(err, "creating container "+c.name)
}
