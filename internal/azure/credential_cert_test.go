package azure

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// writeTestCertificate writes a self-signed RSA certificate and its key, both
// PEM, to one file (the layout AZURE_CLIENT_CERTIFICATE_PATH takes) and
// returns the path and the certificate.
func writeTestCertificate(t *testing.T) (string, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "djdeploy-test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})...)
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, cert
}

// decodeB64 accepts standard or URL-safe base64, padded or not: RFC 7515 says
// base64url for x5t, MSAL writes standard; both carry the same digest.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func TestClientCertificateCredential(t *testing.T) {
	f := newFakeAuthority(t)
	path, cert := writeTestCertificate(t)
	cred, err := f.config().NewCredential(CredentialOptions{Kind: "client-certificate", TenantID: testTenant, ClientID: "client-1",
		Getenv: envMap(map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": path})})
	if err != nil {
		t.Fatal(err)
	}
	if CredentialKind(cred) != CredClientCertificate {
		t.Errorf("kind = %q", CredentialKind(cred))
	}
	tok, err := cred.GetToken(context.Background(), armScope)
	if err != nil {
		t.Fatalf("GetToken: %v", err)
	}
	if tok.Token != "access-1" {
		t.Errorf("token = %q", tok.Token)
	}

	forms := f.forms()
	if len(forms) != 1 {
		t.Fatalf("token requests = %d, want 1", len(forms))
	}
	form := forms[0]
	if form["client_assertion_type"] != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
		t.Errorf("client_assertion_type = %q", form["client_assertion_type"])
	}
	if form["client_id"] != "client-1" || form["client_secret"] != "" {
		t.Errorf("client_id = %q, client_secret = %q", form["client_id"], form["client_secret"])
	}
	parts := strings.Split(form["client_assertion"], ".")
	if len(parts) != 3 {
		t.Fatalf("client_assertion %q is not a signed JWT", form["client_assertion"])
	}

	var header map[string]any
	var claims struct {
		Iss, Sub, Aud string
	}
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("JWT part %d: %v", i, err)
		}
	}
	if claims.Iss != "client-1" || claims.Sub != "client-1" {
		t.Errorf("iss = %q, sub = %q, want the client id", claims.Iss, claims.Sub)
	}
	if !strings.HasSuffix(claims.Aud, "/"+testTenant+"/oauth2/v2.0/token") {
		t.Errorf("aud = %q, want the tenant's token endpoint", claims.Aud)
	}

	// The thumbprint tells Entra which of the app's certificates to check the
	// signature with: it must be this certificate's digest.
	sha1Sum, sha256Sum := sha1.Sum(cert.Raw), sha256.Sum256(cert.Raw)
	thumbprints := map[string][]byte{"x5t": sha1Sum[:], "x5t#S256": sha256Sum[:]}
	found := false
	for name, want := range thumbprints {
		v, ok := header[name].(string)
		if !ok {
			continue
		}
		found = true
		got, err := decodeB64(v)
		if err != nil || string(got) != string(want) {
			t.Errorf("header %s = %q, want the certificate's thumbprint %x", name, v, want)
		}
	}
	if !found {
		t.Fatalf("JWT header %v has neither x5t nor x5t#S256", header)
	}

	// And the assertion is signed with the certificate's key.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	pub := cert.PublicKey.(*rsa.PublicKey)
	switch header["alg"] {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, nil)
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		t.Fatalf("alg = %v, want PS256 or RS256", header["alg"])
	}
	if err != nil {
		t.Errorf("assertion signature does not verify with the certificate's key: %v", err)
	}
}

func TestClientCertificateMissingFileIsUsageError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-cert.pem")
	const password = "pfx-passw0rd"
	_, err := Config{}.NewCredential(CredentialOptions{Kind: "client-certificate", TenantID: testTenant, ClientID: "client-1",
		Getenv: envMap(map[string]string{"AZURE_CLIENT_CERTIFICATE_PATH": path, "AZURE_CLIENT_CERTIFICATE_PASSWORD": password})})
	if problem.ExitCode(err) != problem.ExitUsage {
		t.Fatalf("err = %v, want a usage error (exit 2)", err)
	}
	p, ok := problem.As(err)
	if !ok || p.Fix == "" {
		t.Fatalf("err = %#v, want a problem.Error with a fix", err)
	}
	if !strings.Contains(p.Error(), path) {
		t.Errorf("error %q does not name the path %s", p.Error(), path)
	}
	if strings.Contains(p.Error()+p.Fix, password) {
		t.Errorf("error leaks the certificate password: %q / %q", p.Error(), p.Fix)
	}
}
