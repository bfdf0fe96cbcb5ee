package staticsync

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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
	var resp blockblob.UploadBufferResponse
	err = s.c.inStateContainer(ctx, func() (err error) {
		resp, err = s.c.state.NewBlockBlobClient(s.c.metaName(name)).UploadBuffer(ctx, data, &blockblob.UploadBufferOptions{
			HTTPHeaders:      &blob.HTTPHeaders{BlobContentType: to.Ptr("application/json"), BlobCacheControl: to.Ptr("no-store")},
			AccessConditions: cond,
		})
		return err
	})
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

// UpdateJSON reads name into a fresh T, lets fn change it, and writes it
// back on the condition that nobody wrote it meanwhile (ETag), retrying a
// lost race a few times: the release ledger and the production history
// take concurrent writers this way.
func UpdateJSON[T any](ctx context.Context, s *Store, name string, fn func(v *T) error) error {
	if err := checkStoreName(name); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		var v T
		etag, _, err := s.get(ctx, name, &v)
		if err != nil {
			return err
		}
		if err := fn(&v); err != nil {
			return err
		}
		cond := &blob.AccessConditions{ModifiedAccessConditions: &blob.ModifiedAccessConditions{}}
		if etag != "" {
			cond.ModifiedAccessConditions.IfMatch = to.Ptr(etag)
		} else {
			cond.ModifiedAccessConditions.IfNoneMatch = to.Ptr(azcore.ETagAny)
		}
		_, err = s.put(ctx, name, v, cond)
		if err == nil {
			return nil
		}
		if !bloberror.HasCode(err, bloberror.ConditionNotMet, bloberror.BlobAlreadyExists) || attempt >= 5 {
			return s.c.explain(err, "writing "+MetaDir+name)
		}
	}
}

// PutFile uploads the file at path as name (e.g. "artifacts/<id>/app.zip"):
// releases keep their packages beside the ledger for rollbacks.
func (s *Store) PutFile(ctx context.Context, name, path string) error {
	if err := checkStoreName(name); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	upload := func() error {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := s.c.state.NewBlockBlobClient(s.c.metaName(name)).UploadFile(ctx, f, &blockblob.UploadFileOptions{
			HTTPHeaders: &blob.HTTPHeaders{BlobContentType: to.Ptr("application/octet-stream")},
			Concurrency: 4,
		})
		return err
	}
	if err := s.c.inStateContainer(ctx, upload); err != nil {
		return s.c.explain(err, "writing "+MetaDir+name)
	}
	return nil
}

// GetFile downloads name to path. found is false (and err nil) when name
// does not exist.
func (s *Store) GetFile(ctx context.Context, name, path string) (found bool, err error) {
	if err := checkStoreName(name); err != nil {
		return false, err
	}
	f, err := os.Create(path)
	if err != nil {
		return false, fmt.Errorf("creating %s: %w", path, err)
	}
	defer f.Close()
	_, err = s.c.state.NewBlobClient(s.c.metaName(name)).DownloadFile(ctx, f, &blob.DownloadFileOptions{Concurrency: 4})
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		f.Close()
		os.Remove(path)
		return false, nil
	}
	if err != nil {
		return false, s.c.explain(err, "reading "+MetaDir+name)
	}
	return true, f.Close()
}

// Exists says whether name is stored.
func (s *Store) Exists(ctx context.Context, name string) (bool, error) {
	if err := checkStoreName(name); err != nil {
		return false, err
	}
	_, err := s.c.state.NewBlobClient(s.c.metaName(name)).GetProperties(ctx, nil)
	if bloberror.HasCode(err, bloberror.BlobNotFound, bloberror.ContainerNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.c.explain(err, "reading "+MetaDir+name)
	}
	return true, nil
}
