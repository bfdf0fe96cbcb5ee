package staticsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/djdeploy/djdeploy/internal/problem"
)

// Store keeps small JSON documents under "<container>/<prefix>.djdeploy/"
// in the private state container, beside the release manifests and the
// lock: the release command keeps its resume state there.
type Store struct{ c *Client }

// Store returns the client's state store.
func (c *Client) Store() *Store { return &Store{c: c} }

func checkStoreName(name string) error {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, `\`) || name == lockName {
		return problem.Failf("", "invalid state name %q", name)
	}
	return nil
}

// PutJSON writes v as name (e.g. "resume/abc.json") under .djdeploy/.
func (s *Store) PutJSON(ctx context.Context, name string, v any) error {
	if err := checkStoreName(name); err != nil {
		return err
	}
	_, err := s.put(ctx, name, v, nil)
	return err
}

// GetJSON reads name into v. found is false (and err nil) when it does
// not exist.
func (s *Store) GetJSON(ctx context.Context, name string, v any) (found bool, err error) {
	if err := checkStoreName(name); err != nil {
		return false, err
	}
	_, found, err = s.get(ctx, name, v)
	return found, err
}

// Delete removes name; a missing name is not an error.
func (s *Store) Delete(ctx context.Context, name string) error {
	if err := checkStoreName(name); err != nil {
		return err
	}
	_, err := s.c.state.NewBlobClient(s.c.metaName(name)).Delete(ctx, nil)
	if err != nil && !bloberror.HasCode(err, bloberror.BlobNotFound) {
		return s.c.explain(err, "deleting "+MetaDir+name)
	}
	return nil
}

// put writes JSON; cond makes it conditional (If-Match an ETag, or
// If-None-Match * to create only).
func (s *Store) put(ctx context.Context, name string, v any, cond *blob.AccessConditions) (azcore.ETag, error) {
	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return "", fmt.Errorf("encoding %s: %w", name, err)
	}
	upload := func() (blockblob.UploadBufferResponse, error) {
		return s.c.state.NewBlockBlobClient(s.c.metaName(name)).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json"), BlobCacheControl: to.Ptr("no-store")},
			AccessConditions: cond,
		})
	}
	resp, err := upload()
	if bloberror.HasCode(err, bloberror.ContainerNotFound) {
		if err := s.c.createStateContainer(ctx); err != nil {
			return "", err
		}
		resp, err = upload()
	}
	if err != nil {
		if bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) {
			return "", err // callers retry on a lost race
		}
		return "", s.c.explain(err, "writing "+MetaDir+name)
	}
	if resp.ETag == nil {
		return "", nil
	}
	return *resp.ETag, nil
}

// get reads JSON and its ETag. State not moved to the private container
// yet (no lock taken since the upgrade) is read where an older version
// left it, with no ETag: a conditional write then creates it.
func (s *Store) get(ctx context.Context, name string, v any) (azcore.ETag, bool, error) {
	resp, err := s.c.state.NewBlobClient(s.c.metaName(name)).DownloadStream(ctx, nil)
	legacy := false
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		legacy = true
		resp, err = s.c.container.NewBlobClient(s.c.legacyMetaName(name)).DownloadStream(ctx, nil)
	}
	if err != nil {
		if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
			return "", false, nil
		}
		return "", false, s.c.explain(err, "reading "+MetaDir+name)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, resp.Body); err != nil {
		return "", false, s.c.explain(err, "reading "+MetaDir+name)
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		return "", false, problem.Failf("delete the blob if it was written by hand; djdeploy rewrites it",
			"%s in container %s is not valid JSON: %v", s.c.metaName(name), StateContainer, err)
	}
	var etag azcore.ETag
	if resp.ETag != nil && !legacy {
		etag = *resp.ETag
	}
	return etag, true, nil
}
