package artifact

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/klauspost/compress/flate"
)

// ZipOptions tune the zip writer. The zero value is sensible.
type ZipOptions struct {
	// Workers compress files in parallel (default: GOMAXPROCS).
	Workers int
	// Level is the deflate level, 1 (fast) to 9 (small); default 6, the
	// level of Info-ZIP and Python's zipfile.
	Level int
	// ModTime is every entry's timestamp (default 1980-01-01, the DOS epoch),
	// so that the zip depends on content only. Builds set it from
	// SOURCE_DATE_EPOCH when given.
	ModTime time.Time
	// TempDir holds compressed output of large files while it waits for its
	// turn (default: the system's).
	TempDir string
	// SpillSize is the size above which a file is streamed to a temporary
	// file instead of held in memory (default 512 KiB).
	SpillSize int64
	// Stamp, when set, is called once every entry is written with the
	// SHA-256 of the zip's bytes so far (ContentSHA256) and returns the
	// body of one last stored entry, StampName: the build puts the release
	// id there, which is derived from that digest and so cannot be inside
	// it.
	Stamp func(contentSHA256 string) []byte
}

// StampName is the file at the root of every build's zip that holds its
// release id: the app (and the auto startup command, which exports it as
// DJDEPLOY_RELEASE_ID) reads from the code itself which release it is, so
// a health answer proves what runs, whatever app setting a slot carries.
const StampName = "DJDEPLOY_RELEASE"

// DOSEpoch is the earliest time a zip entry can carry.
var DOSEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

func (o ZipOptions) withDefaults() ZipOptions {
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.Level == 0 {
		o.Level = 6
	}
	if o.ModTime.IsZero() || o.ModTime.Before(DOSEpoch) {
		o.ModTime = DOSEpoch
	}
	o.ModTime = o.ModTime.UTC().Truncate(2 * time.Second)
	if o.SpillSize <= 0 {
		o.SpillSize = 512 << 10
	}
	return o
}

// ZipStats describe a written zip.
type ZipStats struct {
	Files int   // file entries
	Dirs  int   // folder entries
	Bytes int64 // uncompressed bytes of the files
	Size  int64 // bytes of the zip
	// SHA256 is the hex digest of the zip's bytes.
	SHA256 string
	// ContentSHA256 is the digest of the zip's bytes before the stamp
	// (ZipOptions.Stamp); without a stamp it is SHA256.
	ContentSHA256 string
}

// ZipDir zips a folder the way a build zips a project (default excludes,
// .djdeployignore, symlink rules) into file. It is the zip step on its own,
// for benchmarks and tools.
func ZipDir(ctx context.Context, dir, file string, opt ZipOptions) (ZipStats, error) {
	ex, err := NewExcluder(dir)
	if err != nil {
		return ZipStats{}, err
	}
	ents, err := collect(dir, "", ex, nil)
	if err != nil {
		return ZipStats{}, err
	}
	if err := sortEntries(ents); err != nil {
		return ZipStats{}, err
	}
	return writeZipFile(ctx, file, ents, opt, progress.Discard)
}

// writeZipFile writes the zip to file through a temporary name, so a failed
// build never leaves a truncated app.zip behind.
func writeZipFile(ctx context.Context, file string, ents []fileEntry, opt ZipOptions, rep progress.Reporter) (ZipStats, error) {
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return ZipStats{}, fmt.Errorf("creating %s: %w", file, err)
	}
	defer os.Remove(tmp)
	st, err := writeZip(ctx, f, ents, opt, rep)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("writing %s: %w", file, cerr)
	}
	if err != nil {
		return ZipStats{}, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return ZipStats{}, fmt.Errorf("writing %s: %w", file, err)
	}
	return st, nil
}

// compressed is one file's entry, ready to be copied into the zip.
type compressed struct {
	method  uint16
	crc     uint32
	size    int64 // uncompressed
	csize   int64 // stored bytes
	mem     *bytes.Buffer
	raw     []byte   // small files stored uncompressed keep their bytes here
	spill   *os.File // large files: deflated bytes
	fromSrc bool     // large file stored uncompressed: re-read the source
	err     error
}

// countingWriter counts and hashes what reaches the output.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeZip writes ents (sorted) as a deterministic zip: fixed timestamps,
// normalised modes, entries in name order. Files are deflated in parallel
// by opt.Workers, each into memory (small files) or a temporary file (large
// ones); at most a bounded window of finished entries waits for its turn,
// so memory does not grow with the project.
func writeZip(ctx context.Context, w io.Writer, ents []fileEntry, opt ZipOptions, rep progress.Reporter) (ZipStats, error) {
	opt = opt.withDefaults()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	hash := sha256.New()
	cw := &countingWriter{w: io.MultiWriter(w, hash)}
	bw := bufio.NewWriterSize(cw, 256<<10)
	zw := zip.NewWriter(bw)

	window := 2 * opt.Workers
	if window > 32 {
		window = 32
	}
	results := make([]chan *compressed, len(ents))
	for i := range results {
		results[i] = make(chan *compressed, 1)
	}
	slots := make(chan struct{}, window)
	jobs := make(chan int)

	// Dispatch in name order, never more than window ahead of the writer.
	go func() {
		defer close(jobs)
		for i := range ents {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for k := 0; k < opt.Workers; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newCompressor(opt)
			for i := range jobs {
				if ents[i].Src == "" {
					results[i] <- nil // folders have nothing to compress
					continue
				}
				results[i] <- c.compress(ents[i])
			}
		}()
	}
	// Whatever happens, leave no worker blocked and no temp file behind.
	defer func() {
		cancel()
		for range jobs { //nolint:revive // drain
		}
		wg.Wait()
		for _, ch := range results {
			select {
			case r := <-ch:
				r.release()
			default:
			}
		}
	}()

	var st ZipStats
	var files int64
	total := int64(0)
	for _, e := range ents {
		if e.Src != "" {
			total++
		}
	}
	dosDate, dosTime := msDosTime(opt.ModTime)
	for i, e := range ents {
		// CreateRaw writes the header as given: set what CreateHeader would.
		fh := &zip.FileHeader{Name: e.Name, ModifiedDate: dosDate, ModifiedTime: dosTime}
		fh.SetMode(e.Mode)
		fh.CreatorVersion = 3<<8 | 20 // Unix, zip 2.0: readers honour the mode bits
		fh.ReaderVersion = 20
		if !isASCII(e.Name) && utf8.ValidString(e.Name) {
			fh.Flags |= 0x800 // the name is UTF-8
		}
		// Every entry, folders included, went through a worker: receiving
		// its result proves its slot was taken, so the release below
		// cannot block.
		var r *compressed
		select {
		case r = <-results[i]:
		case <-ctx.Done():
			return st, ctx.Err()
		}
		<-slots
		if e.Src == "" {
			fh.Method = zip.Store
			if _, err := zw.CreateRaw(fh); err != nil {
				return st, fmt.Errorf("writing zip: %w", err)
			}
			st.Dirs++
			continue
		}
		if r.err != nil {
			r.release()
			return st, r.err
		}
		fh.Method = r.method
		fh.CRC32 = r.crc
		fh.UncompressedSize64 = uint64(r.size)
		fh.CompressedSize64 = uint64(r.csize)
		ew, err := zw.CreateRaw(fh)
		if err != nil {
			r.release()
			return st, fmt.Errorf("writing zip: %w", err)
		}
		if err := r.copyTo(ew, e); err != nil {
			r.release()
			return st, err
		}
		r.release()
		st.Files++
		st.Bytes += r.size
		files++
		rep.Count("zip", files, total)
	}
	if opt.Stamp != nil {
		if err := writeStamp(zw, bw, hash, &st, opt, dosDate, dosTime); err != nil {
			return st, err
		}
	}
	if err := zw.Close(); err != nil {
		return st, fmt.Errorf("writing zip: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return st, fmt.Errorf("writing zip: %w", err)
	}
	st.Size = cw.n
	st.SHA256 = hex.EncodeToString(hash.Sum(nil))
	if st.ContentSHA256 == "" {
		st.ContentSHA256 = st.SHA256
	}
	return st, nil
}

// writeStamp adds the StampName entry, stored, after every other: its
// body is computed from the digest of what precedes it.
func writeStamp(zw *zip.Writer, bw *bufio.Writer, h hash.Hash, st *ZipStats, opt ZipOptions, dosDate, dosTime uint16) error {
	// zip.Writer buffers nothing of its own between entries: after the
	// flush the hash has seen every byte written so far.
	if err := zw.Flush(); err != nil {
		return fmt.Errorf("writing zip: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing zip: %w", err)
	}
	st.ContentSHA256 = hex.EncodeToString(h.Sum(nil))
	body := opt.Stamp(st.ContentSHA256)
	fh := &zip.FileHeader{Name: StampName, Method: zip.Store, ModifiedDate: dosDate, ModifiedTime: dosTime,
		CRC32: crc32.ChecksumIEEE(body), UncompressedSize64: uint64(len(body)), CompressedSize64: uint64(len(body))}
	fh.SetMode(0o644)
	fh.CreatorVersion = 3<<8 | 20
	fh.ReaderVersion = 20
	w, err := zw.CreateRaw(fh)
	if err != nil {
		return fmt.Errorf("writing zip: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("writing zip: %w", err)
	}
	st.Files++
	st.Bytes += int64(len(body))
	return nil
}

// msDosTime encodes t (UTC) as a zip entry's MS-DOS date and time.
func msDosTime(t time.Time) (date, tm uint16) {
	t = t.UTC()
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	tm = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, tm
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// compressor is one worker's reusable state.
type compressor struct {
	opt  ZipOptions
	fw   *flate.Writer
	copy []byte
}

func newCompressor(opt ZipOptions) *compressor {
	fw, _ := flate.NewWriter(io.Discard, opt.Level)
	return &compressor{opt: opt, fw: fw, copy: make([]byte, 64<<10)}
}

var memPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (c *compressor) compress(e fileEntry) *compressed {
	f, err := os.Open(e.Src)
	if err != nil {
		return &compressed{err: fmt.Errorf("reading %s: %w", e.Src, err)}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return &compressed{err: fmt.Errorf("reading %s: %w", e.Src, err)}
	}
	if st.Size() <= c.opt.SpillSize {
		return c.small(f, e)
	}
	return c.large(f, e)
}

// small deflates a file held in memory, storing it raw when deflate does
// not help (already compressed images, fonts, archives).
func (c *compressor) small(f *os.File, e fileEntry) *compressed {
	raw, err := io.ReadAll(io.LimitReader(f, c.opt.SpillSize+1))
	if err != nil {
		return &compressed{err: fmt.Errorf("reading %s: %w", e.Src, err)}
	}
	r := &compressed{crc: crc32.ChecksumIEEE(raw), size: int64(len(raw))}
	if len(raw) == 0 {
		r.method = zip.Store
		return r
	}
	buf := memPool.Get().(*bytes.Buffer)
	buf.Reset()
	c.fw.Reset(buf)
	if _, err := c.fw.Write(raw); err != nil {
		return &compressed{err: err}
	}
	if err := c.fw.Close(); err != nil {
		return &compressed{err: err}
	}
	if buf.Len() >= len(raw) {
		memPool.Put(buf)
		r.method, r.raw, r.csize = zip.Store, raw, int64(len(raw))
		return r
	}
	r.method, r.mem, r.csize = zip.Deflate, buf, int64(buf.Len())
	return r
}

// large streams a file through deflate into a temporary file.
func (c *compressor) large(f *os.File, e fileEntry) *compressed {
	tmp, err := os.CreateTemp(c.opt.TempDir, "djdeploy-zip-*")
	if err != nil {
		return &compressed{err: fmt.Errorf("creating a temporary file: %w", err)}
	}
	os.Remove(tmp.Name()) // unlinked: the OS reclaims it however we exit
	r := &compressed{method: zip.Deflate, spill: tmp}
	crc := crc32.NewIEEE()
	bw := bufio.NewWriterSize(tmp, 64<<10)
	c.fw.Reset(bw)
	n, err := io.CopyBuffer(io.MultiWriter(c.fw, crc), f, c.copy)
	if err == nil {
		err = c.fw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		r.release()
		return &compressed{err: fmt.Errorf("compressing %s: %w", e.Src, err)}
	}
	r.crc, r.size = crc.Sum32(), n
	pos, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		r.release()
		return &compressed{err: err}
	}
	r.csize = pos
	if r.csize >= r.size {
		// Incompressible: store it, copying from the source at write time.
		r.spill.Close()
		r.spill = nil
		r.method, r.csize, r.fromSrc = zip.Store, r.size, true
	}
	return r
}

func (r *compressed) copyTo(w io.Writer, e fileEntry) error {
	switch {
	case r.mem != nil:
		_, err := w.Write(r.mem.Bytes())
		return err
	case r.raw != nil:
		_, err := w.Write(r.raw)
		return err
	case r.spill != nil:
		if _, err := r.spill.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := io.Copy(w, r.spill)
		return err
	case r.fromSrc:
		f, err := os.Open(e.Src)
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.Src, err)
		}
		defer f.Close()
		crc := crc32.NewIEEE()
		n, err := io.Copy(io.MultiWriter(w, crc), io.LimitReader(f, r.size+1))
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.Src, err)
		}
		if n != r.size || crc.Sum32() != r.crc {
			return errors.New(e.Src + " changed while the zip was being written; run the build again")
		}
	}
	return nil
}

func (r *compressed) release() {
	if r == nil {
		return
	}
	if r.mem != nil {
		memPool.Put(r.mem)
		r.mem = nil
	}
	if r.spill != nil {
		r.spill.Close()
		r.spill = nil
	}
	r.raw = nil
}
