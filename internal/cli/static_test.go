package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/djdeploy/djdeploy/internal/azurite"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/testenv"
)

func runStatic(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string { return env[k] }
	code = Main(context.Background(), args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, getenv)
	return code, out.String(), errb.String()
}

// readOnlySAS is a container SAS that can read and list, nothing else.
func readOnlySAS(t *testing.T, srv *azurite.Server, containerName string) string {
	t.Helper()
	cred, err := service.NewSharedKeyCredential(azurite.AccountName, azurite.AccountKey)
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol: sas.ProtocolHTTPSandHTTP, ExpiryTime: time.Now().Add(time.Hour), ContainerName: containerName,
		Permissions: (&sas.ContainerPermissions{Read: true, List: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	return "BlobEndpoint=" + srv.BlobEndpoint() + ";SharedAccessSignature=" + qp.Encode()
}

func TestStaticSyncCommand(t *testing.T) {
	srv := testenv.Azurite(t)
	dir := t.TempDir()
	for rel, content := range map[string]string{"css/site.css": "body{}", "js/app.0a1b2c3d4e5f.js": "x()"} {
		p := filepath.Join(dir, rel)
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"AZURE_STORAGE_CONNECTION_STRING": srv.ConnectionString()}

	code, out, errs := runStatic(t, env, "static", "sync", "--source", dir, "--static-container", "site", "--static-prefix", "static", "--json")
	if code != 0 {
		t.Fatalf("sync exit %d: %s", code, errs)
	}
	var res struct {
		Uploaded   int      `json:"uploaded"`
		PurgePaths []string `json:"purge_paths"`
		Access     struct {
			Level  string `json:"level"`
			Advice string `json:"advice"`
		} `json:"access"`
	}
	if err := decodeResult(out, &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if res.Uploaded != 2 || len(res.PurgePaths) != 1 || res.PurgePaths[0] != "/static/css/site.css" {
		t.Errorf("result: %+v", res)
	}
	if res.Access.Level != "private" || !strings.Contains(errs, "Front Door") {
		t.Errorf("access check: %+v; stderr %s", res.Access, errs)
	}
	code, out, _ = runStatic(t, env, "static", "sync", "--source", dir, "--static-container", "site", "--static-prefix", "static")
	if code != 0 || !strings.Contains(out, "uploaded 0") || !strings.Contains(out, "skipped 2") {
		t.Errorf("second sync (exit %d): %s", code, out)
	}

	secretConn := "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + strings.Repeat("QUJD", 22) + ";BlobEndpoint=" + srv.BlobEndpoint() + ";"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"missing folder", env, []string{"--source", filepath.Join(dir, "nope")}, problem.ExitUsage, "does not exist"},
		{"no source", env, nil, problem.ExitUsage, "missing --source"},
		{"invalid container", env, []string{"--source", dir, "--static-container", "My_Static"}, problem.ExitUsage, "invalid container name"},
		{"malformed connection string", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": "garbage"}, []string{"--source", dir}, problem.ExitUsage, "malformed"},
		{"wrong account key", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": secretConn}, []string{"--source", dir}, problem.ExitFailure, "account key was rejected"},
		{"no credentials", map[string]string{}, []string{"--source", dir}, problem.ExitUsage, "no storage credentials"},
		{"read-only SAS", map[string]string{"AZURE_STORAGE_CONNECTION_STRING": readOnlySAS(t, srv, "site")},
			[]string{"--source", dir, "--static-container", "site", "--static-prefix", "other"}, problem.ExitFailure, "SAS token lacks a permission"},
		{"bad header rule", env, []string{"--source", dir, "--static-headers", "nonsense"}, problem.ExitUsage, "GLOB=VALUE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runStatic(t, tc.env, append([]string{"static", "sync"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s", code, tc.code, errs)
			}
			if n := strings.Count(errs, "error:"); n != 1 {
				t.Errorf("%d error lines, want one:\n%s", n, errs)
			}
			if strings.Contains(errs, strings.Repeat("QUJD", 22)) || strings.Contains(errs, "sig=") && !strings.Contains(errs, "sig=REDACTED") {
				t.Errorf("secret in error output:\n%s", errs)
			}
		})
	}

	// prune and mark-production through the CLI.
	code, out, errs = runStatic(t, env, "static", "sync", "--source", dir, "--static-container", "site", "--static-prefix", "static", "--json")
	var r2 struct {
		ReleaseID string `json:"release_id"`
	}
	_ = decodeResult(out, &r2)
	if code != 0 || r2.ReleaseID == "" {
		t.Fatalf("sync: %d %s", code, errs)
	}
	if code, _, errs = runStatic(t, env, "static", "mark-production", r2.ReleaseID, "--static-container", "site", "--static-prefix", "static"); code != 0 {
		t.Fatalf("mark-production: %s", errs)
	}
	code, out, errs = runStatic(t, env, "static", "prune", "--static-keep", "1", "--static-grace", "0s", "--static-container", "site", "--static-prefix", "static", "--json")
	if code != 0 || !strings.Contains(out, `"deleted": 0`) || !strings.Contains(out, r2.ReleaseID) {
		t.Errorf("prune (exit %d): %s %s", code, out, errs)
	}
	if code, _, errs = runStatic(t, env, "static", "prune", "--static-keep", "0", "--static-container", "site"); code != problem.ExitUsage {
		t.Errorf("prune --static-keep 0: exit %d %s", code, errs)
	}
}
