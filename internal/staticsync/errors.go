package staticsync

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/redact"
)

// explain turns an SDK error into one actionable message. op says what was
// being done ("listing blobs in static"). Secrets are redacted from the text.
func (c *Client) explain(err error, op string) error {
	if err == nil {
		return nil
	}
	if _, ok := problem.As(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	fix, usage := c.advice(err)
	return &problem.Error{Usage: usage, What: op, Fix: fix, Err: errors.New(c.redact(shortError(err)))}
}

func (c *Client) advice(err error) (fix string, usage bool) {
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		return "sign-in to Microsoft Entra ID failed: check the credential settings (djdeploy settings lists them), or use AZURE_STORAGE_CONNECTION_STRING", false
	}
	switch {
	case bloberror.HasCode(err, bloberror.AuthorizationPermissionMismatch, bloberror.AuthorizationFailure, bloberror.InsufficientAccountPermissions):
		switch c.auth {
		case "sas":
			return "the SAS token lacks a permission: give it read, add, create, write, delete and list on blobs (container and object resource types for an account SAS)", false
		case "token":
			return "grant the signed-in identity the 'Storage Blob Data Contributor' role on the storage account or the container (Owner or Contributor alone does not give data access); role assignments take a few minutes to apply", false
		}
		// Azure answers a wrong key with AuthenticationFailed, a firewall
		// with AuthorizationFailure; Azurite answers a wrong key with the latter.
		return "the account key was rejected, or the storage account's firewall blocks this runner, or shared key access is disabled on the account", false
	case bloberror.HasCode(err, bloberror.AuthorizationResourceTypeMismatch, bloberror.AuthorizationServiceMismatch):
		return "the SAS token does not cover this resource: use an account SAS for the Blob service with container and object resource types", false
	case bloberror.HasCode(err, bloberror.AuthenticationFailed, bloberror.NoAuthenticationInformation):
		switch c.auth {
		case "sas":
			return "the SAS token was rejected: it is malformed, expired or revoked; create a new one", true
		case "token":
			return "the access token was rejected: check the tenant and that the token's audience is https://storage.azure.com/", true
		}
		return "the account key was rejected: copy the connection string again from the portal (Access keys)", true
	case bloberror.HasCode(err, bloberror.ContainerNotFound):
		return fmt.Sprintf("create the container %q, or run 'djdeploy static sync' which creates it", c.name), false
	case bloberror.HasCode(err, bloberror.AccountIsDisabled):
		return "the storage account is disabled; enable it in the portal", false
	case bloberror.HasCode(err, bloberror.MD5Mismatch):
		return "a file changed while it was uploaded, or its MD5 in release.json is wrong; rebuild and sync again", false
	case bloberror.HasCode(err, bloberror.ContainerBeingDeleted):
		return "the container is being deleted; wait a minute or use another name", false
	}
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) && respErr.StatusCode == 403 && respErr.ErrorCode == "" {
		return "access was refused: the storage account's firewall or network rules may block this runner", false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "the storage account's host name does not resolve: check storage-account, blob-endpoint and cloud", true
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return "cannot reach the Blob endpoint " + c.endpoint + ": check blob-endpoint, the network, or that the emulator runs", false
	}
	return "", false
}

// shortError keeps the first informative line of an SDK error: azcore's
// ResponseError text runs to a dozen lines of headers and XML.
func shortError(err error) string {
	var respErr *azcore.ResponseError
	if errors.As(err, &respErr) {
		code := respErr.ErrorCode
		if code == "" {
			code = "no error code"
		}
		return fmt.Sprintf("HTTP %d %s", respErr.StatusCode, code)
	}
	s := err.Error()
	if i := strings.Index(s, "\n"); i > 0 {
		s = s[:i]
	}
	return s
}

var (
	sigParam   = regexp.MustCompile(`(?i)(sig|signature)=[^&;\s"']+`)
	accountKey = regexp.MustCompile(`(?i)(AccountKey|SharedAccessSignature)=[^;\s"']+`)
)

// redact removes every secret the client knows and anything shaped like a
// SAS signature or an account key.
func (c *Client) redact(s string) string { return redactAll(s, c.secrets) }

func redactAll(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, "REDACTED")
		}
	}
	s = accountKey.ReplaceAllString(s, "$1=REDACTED")
	return redact.SAS(sigParam.ReplaceAllString(s, "$1=REDACTED"))
}

// Redact removes SAS signatures and account keys from s; front ends use it
// on any text that may hold a storage URL or connection string.
func Redact(s string) string { return redactAll(s, nil) }
