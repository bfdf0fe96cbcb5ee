package cli

import (
	"context"

	"github.com/djdeploy/djdeploy/internal/settings"
	"github.com/djdeploy/djdeploy/internal/staticsync"
)

// holdReleaseLock takes the release lock (the lease on the static
// container's lock blob) for a command that changes a slot or production
// outside a release: a deploy or swap during a release's warm-up would
// otherwise be swapped into production under the release's name. Without
// storage settings there is nowhere to hold it: the command warns and runs
// unlocked, as it did before. The caller releases the lock it returns
// (nil when none was taken).
func (e *Env) holdReleaseLock(ctx context.Context, vals *settings.Values, what string) (*staticsync.Lock, error) {
	if vals.String("storage-connection-string") == "" && vals.String("storage-account") == "" && vals.String("blob-endpoint") == "" {
		e.staticProgress().Warnf("%s takes no release lock: no storage account is configured (set storage-account, or the connection string, as for 'djdeploy release', so it waits for a running release)", what)
		return nil, nil
	}
	c, err := openStatic(ctx, vals)
	if err != nil {
		return nil, err
	}
	return staticsync.AcquireLock(ctx, c, staticLockHolder(e.getenv), vals.Duration("lock-timeout"), e.staticProgress())
}

// releaseLockWhenDone gives the lock back, even when ctx was cancelled.
func (e *Env) releaseLockWhenDone(ctx context.Context, l *staticsync.Lock) {
	if l == nil {
		return
	}
	if err := l.Release(context.WithoutCancel(ctx)); err != nil {
		e.staticProgress().Warnf("releasing the release lock: %v (it expires by itself within a minute)", err)
	}
}
