package staticsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/lease"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

const lockName = "lock"

// leaseDuration is the lock's lease: a holder that dies (SIGKILL, a lost
// runner) lets go within this time without anyone breaking the lease.
// Tests shorten it (Azure accepts 15-60 s).
var leaseDuration = 60 * time.Second

// LeaseEnv shortens the lease for tests of a paused or killed djdeploy
// process (another OS process, so the test cannot set leaseDuration).
// Azure accepts 15-60 s; other values are ignored. Never needed in use.
const LeaseEnv = "DJDEPLOY_TEST_LOCK_LEASE"

func init() {
	if d, err := time.ParseDuration(os.Getenv(LeaseEnv)); err == nil && d >= 15*time.Second && d <= 60*time.Second {
		leaseDuration = d
	}
}

// ErrLockLost means the lease could not be renewed: another release may
// now hold the lock, so the holder must stop writing.
var ErrLockLost = errors.New("the release lock was lost (its lease could not be renewed)")

// Lock is a held release lock: a lease on "<prefix>.djdeploy/lock",
// renewed in the background until Release.
type Lock struct {
	c      *Client
	lease  *lease.BlobClient
	Holder string
	Since  time.Time

	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	err    error
	lastOK time.Time // last time the service confirmed the lease
	once   sync.Once
}

// LockHolder is who holds (or last held) a lock, read from the lock blob.
type LockHolder struct {
	Holder string
	Host   string
	PID    string
	Since  string
	Leased bool
}

func (h LockHolder) String() string {
	s := h.Holder
	if s == "" {
		s = "an unknown holder"
	}
	var extra []string
	if h.Host != "" {
		extra = append(extra, "host "+h.Host)
	}
	if h.PID != "" {
		extra = append(extra, "pid "+h.PID)
	}
	if len(extra) > 0 {
		s += " (" + strings.Join(extra, ", ") + ")"
	}
	if h.Since != "" {
		s += " since " + h.Since
	}
	return s
}

// AcquireLock takes the release lock of c's container and prefix. When
// another release holds it, AcquireLock waits up to wait (0: not at all),
// reporting who holds it, then fails naming the holder. holder describes
// this run (a CI run URL, or user@host); host, pid and start time are added.
func AcquireLock(ctx context.Context, c *Client, holder string, wait time.Duration, rep progress.Reporter) (*Lock, error) {
	if rep == nil {
		rep = progress.Discard
	}
	bc := c.state.NewBlockBlobClient(c.metaName(lockName))
	lc, err := lease.NewBlobClient(bc, nil)
	if err != nil {
		return nil, fmt.Errorf("creating lease client: %w", err)
	}
	deadline := time.Now().Add(wait)
	delay := time.Second
	var last LockHolder
	reported := false
	tries, oddTries := 0, 0
	for {
		_, err := lc.AcquireLease(ctx, int32(leaseDuration/time.Second), nil)
		if err == nil {
			break
		}
		switch {
		case bloberror.HasCode(err, bloberror.BlobNotFound):
			// First release against this container: create the lock blob.
			// If-None-Match:* keeps a racing creator's blob (and lease).
			_, err = bc.UploadBuffer(ctx, nil, &blockblob.UploadBufferOptions{
				AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
			})
			if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.LeaseIDMissing, bloberror.ConditionNotMet) {
				return nil, c.explain(err, "creating the release lock "+c.metaName(lockName))
			}
			continue
		case bloberror.HasCode(err, bloberror.ContainerNotFound):
			if cerr := c.createStateContainer(ctx); cerr != nil {
				return nil, cerr
			}
			continue
		case bloberror.HasCode(err, bloberror.LeaseAlreadyPresent):
			h, herr := ReadLockHolder(ctx, c)
			if herr == nil {
				last = h
			}
			if time.Now().Add(delay).After(deadline) {
				fix := "wait for that release to finish; if it died, its lease expires within " + leaseDuration.String() + " by itself"
				if wait > 0 {
					fix += fmt.Sprintf("; raise lock-timeout (now %s) to wait longer", wait)
				}
				return nil, problem.Failf(fix, "another release holds the lock on container %s: %s", c.name, last)
			}
			tries++
			// The holder writes its name just after taking the lease: give
			// it one more look before saying "unknown".
			if !reported && (last.Holder != "" || tries > 1) {
				rep.Infof("waiting for the release lock on %s, held by %s (up to %s)", c.name, last, wait.Round(time.Second))
				reported = true
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(delay):
			}
			delay = min(delay*2, 5*time.Second)
			continue
		default:
			// Racing first-time creators can get odd answers from the
			// emulator (401 without a code); a few retries settle them.
			if oddTries++; oddTries <= 3 && !bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.AuthorizationFailure, bloberror.AuthorizationPermissionMismatch) {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-time.After(time.Duration(oddTries) * 300 * time.Millisecond):
				}
				continue
			}
			return nil, c.explain(err, "acquiring the release lock "+c.metaName(lockName))
		}
	}

	l := &Lock{c: c, lease: lc, Holder: holder, Since: time.Now().UTC(), lastOK: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	host, _ := os.Hostname()
	md := map[string]*string{
		"djdeploy_holder": to.Ptr(headerSafe(holder)),
		"djdeploy_host":   to.Ptr(headerSafe(host)),
		"djdeploy_pid":    to.Ptr(strconv.Itoa(os.Getpid())),
		"djdeploy_since":  to.Ptr(l.Since.Format(time.RFC3339)),
	}
	if _, err := bc.SetMetadata(ctx, md, &blob.SetMetadataOptions{
		AccessConditions: &blob.AccessConditions{LeaseAccessConditions: &blob.LeaseAccessConditions{LeaseID: lc.LeaseID()}},
	}); err != nil {
		_, _ = lc.ReleaseLease(context.WithoutCancel(ctx), nil)
		return nil, c.explain(err, "recording the release lock's holder")
	}
	// Under the lock, state an older version left in the static container
	// moves to the private one (once; later locks find nothing to move).
	if err := c.migrateState(ctx); err != nil {
		_, _ = lc.ReleaseLease(context.WithoutCancel(ctx), nil)
		return nil, err
	}
	go l.renew()
	return l, nil
}

// ReadLockHolder reports who holds (or last held) the lock.
func ReadLockHolder(ctx context.Context, c *Client) (LockHolder, error) {
	p, err := c.state.NewBlobClient(c.metaName(lockName)).GetProperties(ctx, nil)
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return LockHolder{}, nil
		}
		return LockHolder{}, c.explain(err, "reading the release lock")
	}
	get := func(k string) string {
		for mk, v := range p.Metadata {
			if strings.EqualFold(mk, k) && v != nil {
				return *v
			}
		}
		return ""
	}
	return LockHolder{
		Holder: get("djdeploy_holder"), Host: get("djdeploy_host"), PID: get("djdeploy_pid"), Since: get("djdeploy_since"),
		Leased: p.LeaseState != nil && *p.LeaseState == "leased",
	}, nil
}

// renew keeps the lease alive every third of its duration. A renewal that
// fails for longer than the lease marks the lock lost.
func (l *Lock) renew() {
	defer close(l.done)
	interval := leaseDuration / 3
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), interval)
		err := l.confirm(ctx)
		cancel()
		if errors.Is(err, ErrLockLost) {
			return
		}
	}
}

// confirm renews the lease once. A definite answer (another lease id, no
// lease), or no confirmation for a whole lease duration, marks the lock
// lost and returns ErrLockLost; a passing error within the lease is
// returned as is (the lease still stands).
func (l *Lock) confirm(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	before := l.lastOK
	l.mu.Unlock()
	// A process paused past its lease (SIGSTOP, a frozen VM) must not
	// trust a renewal: another holder may have taken and given back the
	// lock meanwhile, changing what it protects.
	if time.Since(before) >= leaseDuration {
		return l.lose(fmt.Errorf("the lease was not renewed for %s", time.Since(before).Round(time.Second)))
	}
	_, err := l.lease.RenewLease(ctx, nil)
	if err == nil {
		l.mu.Lock()
		l.lastOK = time.Now()
		l.mu.Unlock()
		return nil
	}
	if bloberror.HasCode(err, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation, bloberror.LeaseLost, bloberror.BlobNotFound) ||
		time.Since(before) >= leaseDuration {
		return l.lose(errors.New(shortError(err)))
	}
	return err
}

func (l *Lock) lose(why error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = fmt.Errorf("%w: %v", ErrLockLost, why)
	}
	return l.err
}

// Check asks the service, with one lease renewal, whether the lock is
// still held, before a step changes anything. It returns an error wrapping
// ErrLockLost when the lease lapsed or another run holds it now. A passing
// network error within the lease's lifetime is not a loss.
func (l *Lock) Check(ctx context.Context) error {
	if l == nil {
		return nil
	}
	if err := l.confirm(ctx); errors.Is(err, ErrLockLost) {
		return err
	}
	return nil
}

// Err is non-nil once the lock is lost; work done under it must stop.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Release gives the lock up. It is safe to call more than once, and it
// works even when ctx is already cancelled (an interrupted run still lets
// the next release go at once).
func (l *Lock) Release(ctx context.Context) error {
	var err error
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if _, rerr := l.lease.ReleaseLease(rctx, nil); rerr != nil &&
			!bloberror.HasCode(rerr, bloberror.LeaseIDMismatchWithLeaseOperation, bloberror.LeaseNotPresentWithLeaseOperation) {
			err = l.c.explain(rerr, "releasing the release lock")
		}
	})
	return err
}

// headerSafe keeps metadata values to printable ASCII (they travel as
// HTTP headers).
func headerSafe(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 0x20 && r < 0x7f {
			b.WriteRune(r)
		} else {
			b.WriteByte('?')
		}
	}
	if len(s) > 1024 {
		return b.String()[:1024]
	}
	return b.String()
}
