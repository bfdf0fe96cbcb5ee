package emulator

import (
	"net/http"
	"strings"
	"testing"
)

// TestAdminGuard: the admin API hands out the ARM token and every app
// setting and can inject faults, so a request must carry the run's secret,
// name a loopback Host (DNS rebinding sends the attacker's name) and send
// JSON (a cross-site form can only send text/plain or form encodings).
func TestAdminGuard(t *testing.T) {
	e := shared(t)
	if got := e.Env()[AdminSecretEnv]; got == "" || got != e.AdminSecret() {
		t.Fatalf("export block has %s=%q, want the admin secret", AdminSecretEnv, got)
	}
	if strings.Contains(e.AdminURL(), e.AdminSecret()) {
		t.Fatal("the admin URL carries the secret")
	}
	fault := []byte(`{"method":"GET","path":"*/never-requested","status":503}`)
	cases := []struct {
		name, method, path, secret, host, ctype string
		body                                    []byte
		want                                    int
	}{
		{"env without secret", "GET", "/env", "", "", "", nil, 401},
		{"state without secret", "GET", "/state", "", "", "", nil, 401},
		{"state with a wrong secret", "GET", "/state", "wrong", "", "", nil, 401},
		{"the ARM token is not the admin secret", "GET", "/env", e.Token(), "", "", nil, 401},
		{"rebound Host", "GET", "/env", e.AdminSecret(), "attacker.example:80", "", nil, 403},
		{"text/plain fault", "POST", "/faults", e.AdminSecret(), "", "text/plain", fault, 415},
		{"form fault", "POST", "/faults", e.AdminSecret(), "", "application/x-www-form-urlencoded", fault, 415},
		{"no content type", "POST", "/faults", e.AdminSecret(), "", "", fault, 415},
		{"state with secret", "GET", "/state", e.AdminSecret(), "", "", nil, 200},
		{"localhost Host", "GET", "/faults", e.AdminSecret(), "localhost:1234", "", nil, 200},
		{"json fault", "POST", "/faults", e.AdminSecret(), "", "application/json; charset=utf-8", fault, 201},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := http.NewRequest(c.method, e.AdminURL()+c.path, strings.NewReader(string(c.body)))
			if err != nil {
				t.Fatal(err)
			}
			if c.secret != "" {
				req.Header.Set("Authorization", "Bearer "+c.secret)
			}
			if c.host != "" {
				req.Host = c.host
			}
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, body, c.want)
			}
			if c.want >= 400 && (strings.Contains(body, e.Token()) || strings.Contains(body, e.AdminSecret())) {
				t.Fatalf("a refusal leaked a secret: %s", body)
			}
		})
	}
	if n := len(e.Faults().Pending()); n != 1 {
		t.Errorf("%d faults pending, want only the accepted one", n)
	}
	e.Faults().Clear()
}
