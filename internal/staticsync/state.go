package staticsync

import (
	"bytes"
	"context"
	"io"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// StateContainer is the private container, in the static files' storage
// account, where djdeploy keeps its state: the lock holder (with its CI
// URL, host and pid), the production history, every release's file list
// and the resume state are nobody's business but the deployer's, and a
// public static container (or the CDN in front of it) served them to
// anyone. One container serves every static container and prefix of the
// account: each keeps its state under "<container>/<prefix>.djdeploy/".
const StateContainer = "djdeploy-state"

// inStateContainer runs a write to the state container; when the container
// does not exist yet (the first write to a new account), it creates it,
// private, and runs the write once more.
func (c *Client) inStateContainer(ctx context.Context, write func() error) error {
	err := write()
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err := c.createStateContainer(ctx); err != nil {
			return err
		}
		err = write()
	}
	return err
}

// createStateContainer creates the state container, private (no public
// access level is ever set on it).
func (c *Client) createStateContainer(ctx context.Context) error {
	_, err := c.state.Create(ctx, nil)
	if err == nil || bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil
	}
	return c.explain(err, "creating the private state container "+StateContainer)
}

// stateExists reports whether a state file exists in the state
// container. (Callers that listed the static container find an older
// version's copy in their listing.)
func (c *Client) stateExists(ctx context.Context, name string) (bool, error) {
	_, err := c.state.NewBlobClient(c.metaName(name)).GetProperties(ctx, nil)
	if err == nil {
		return true, nil
	}
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) || strings.Contains(err.Error(), "404") {
		return false, nil
	}
	return false, c.explain(err, "reading "+c.metaName(name))
}

// migrateState moves state an older version kept in the static container
// ("<prefix>.djdeploy/...") to the state container, then deletes the
// public copies. The caller holds the (new) lock. A file already in the
// state container is newer and kept. The old lock blob goes last: if an
// older djdeploy still holds a lease on it, the move stops and says so.
func (c *Client) migrateState(ctx context.Context) error {
	old, _, err := c.list(ctx, c.legacyMetaName(""), false)
	if err != nil {
		return err
	}
	if len(old) == 0 {
		return nil
	}
	names := make([]string, 0, len(old))
	for n := range old {
		names = append(names, n)
	}
	sort.Strings(names)
	lock := c.legacyMetaName(lockName)
	for _, n := range names {
		if n == lock {
			continue
		}
		rel := strings.TrimPrefix(n, c.legacyMetaName(""))
		if err := c.moveStateBlob(ctx, n, c.metaName(rel)); err != nil {
			return err
		}
	}
	if _, ok := old[lock]; ok {
		_, err := c.container.NewBlobClient(lock).Delete(ctx, nil)
		if bloberror.HasCode(err, bloberror.LeaseIDMissing, bloberror.LeaseIDMismatchWithBlobOperation) {
			return problem.Failf("wait for that release to finish (or its lease to expire within a minute), then run again; use one djdeploy version for every job",
				"an older djdeploy holds the release lock in container %s (%s); its state moved to the private container %s", c.name, lock, StateContainer)
		}
		if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
			return c.explain(err, "deleting the public "+lock)
		}
	}
	return nil
}

func (c *Client) moveStateBlob(ctx context.Context, from, to_ string) error {
	resp, err := c.container.NewBlobClient(from).DownloadStream(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound) {
		return nil
	}
	if err != nil {
		return c.explain(err, "reading "+from)
	}
	var buf bytes.Buffer
	_, err = io.Copy(&buf, resp.Body)
	resp.Body.Close()
	if err != nil {
		return c.explain(err, "reading "+from)
	}
	upload := func() error {
		_, err := c.state.NewBlockBlobClient(to_).UploadBuffer(ctx, buf.Bytes(), &blockblob.UploadBufferOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json"), BlobCacheControl: to.Ptr("no-store")},
			AccessConditions: &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{IfNoneMatch: to.Ptr(azcore.ETagAny)}},
		})
		return err
	}
	err = c.inStateContainer(ctx, upload)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobAlreadyExists, bloberror.ConditionNotMet) {
		return c.explain(err, "moving "+from+" to the private container "+StateContainer)
	}
	_, err = c.container.NewBlobClient(from).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return c.explain(err, "deleting the public "+from)
	}
	return nil
}

// listState lists the state container under this container's folder
// plus prefix, with names relative to the container ("<prefix>.djdeploy/...",
// as they were in the static container).
func (c *Client) listState(ctx context.Context, prefix string) (map[string]*remote, error) {
	full, _, err := c.listIn(ctx, c.state, c.name+"/"+prefix, false)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*remote, len(full))
	for n, r := range full {
		out[strings.TrimPrefix(n, c.name+"/")] = r
	}
	return out, nil
}
