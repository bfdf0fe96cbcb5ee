package doctor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/azure"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// fakeARM serves flexible servers under a base path (to catch absolute-URL
// bugs) and records every request.
type fakeARM struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []string
}

const sub = "00000000-0000-0000-0000-00000000000a"

func newFakeARM(t *testing.T) (*fakeARM, *ARMFirewall) {
	t.Helper()
	f := &fakeARM{}
	mux := http.NewServeMux()
	pg := "/arm/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/"
	my := "/arm/subscriptions/" + sub + "/resourceGroups/rg/providers/Microsoft.DBforMySQL/flexibleServers/"
	rule := func(ns, server, name, start, end string) string {
		return fmt.Sprintf(`{"id":"/subscriptions/%s/resourceGroups/rg/providers/%s/flexibleServers/%s/firewallRules/%s","name":%q,"type":"%s/flexibleServers/firewallRules","properties":{"startIpAddress":%q,"endIpAddress":%q}}`,
			sub, ns, server, name, name, ns, start, end)
	}
	mux.HandleFunc("GET "+pg+"paged", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"name":"paged","properties":{"network":{"publicNetworkAccess":"Enabled"}}}`)
	})
	mux.HandleFunc("GET "+pg+"paged/firewallRules", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("$skiptoken") == "" {
			next := "http://" + r.Host + pg + "paged/firewallRules?api-version=2022-12-01&$skiptoken=2"
			fmt.Fprintf(w, `{"value":[%s],"nextLink":%q}`, rule("Microsoft.DBforPostgreSQL", "paged", "AllowAll", "0.0.0.0", "255.255.255.255"), next)
			return
		}
		fmt.Fprintf(w, `{"value":[%s]}`, rule("Microsoft.DBforPostgreSQL", "paged", "office", "203.0.113.5", "203.0.113.5"))
	})
	mux.HandleFunc("GET "+my+"legacy", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"name":"legacy","properties":{"network":{"publicNetworkAccess":"Enabled"}}}`)
	})
	mux.HandleFunc("GET "+my+"legacy/firewallRules", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"value":[%s]}`, rule("Microsoft.DBforMySQL", "legacy", "AllowAllAzureServicesAndResourcesWithinAzureIps", "0.0.0.0", "0.0.0.0"))
	})
	mux.HandleFunc("GET "+pg+"locked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-ms-error-code", "AuthorizationFailed")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `{"error":{"code":"AuthorizationFailed","message":"no"}}`)
	})
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits = append(f.hits, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/arm/subscriptions/"+sub+"/resourceGroups/rg/providers/")+"?"+r.URL.Query().Get("api-version"))
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("%s: no bearer token", r.URL.Path)
		}
		if h, _ := mux.Handler(r); h == nil {
			http.NotFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	opts, err := azure.Config{ARMEndpoint: f.srv.URL + "/arm"}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	opts.Retry.MaxRetries = -1
	opts.Retry.RetryDelay = time.Millisecond
	fw, err := NewARMFirewall(sub, azure.StaticToken("tok"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return f, fw
}

func TestARMFirewallReads(t *testing.T) {
	fake, fw := newFakeARM(t)
	ctx := context.Background()

	d, err := fw.ReadServer(ctx, ServerRef{Kind: KindPostgreSQL, ResourceGroup: "rg", Name: "paged"})
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicNetworkAccess != "Enabled" || len(d.Rules) != 2 || d.Rules[0].Name != "AllowAll" || d.Rules[0].End != "255.255.255.255" || d.Rules[1].Start != "203.0.113.5" {
		t.Errorf("paged server = %+v", d)
	}

	// A name without a kind: PostgreSQL answers 404, MySQL has it.
	d, err = fw.ReadServer(ctx, ServerRef{ResourceGroup: "rg", Name: "legacy"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Kind != KindMySQL || len(d.Rules) != 1 || d.Rules[0].Start != "0.0.0.0" {
		t.Errorf("legacy server = %+v", d)
	}
	want := []string{
		"GET Microsoft.DBforPostgreSQL/flexibleServers/paged?2022-12-01",
		"GET Microsoft.DBforPostgreSQL/flexibleServers/paged/firewallRules?2022-12-01",
		"GET Microsoft.DBforPostgreSQL/flexibleServers/paged/firewallRules?2022-12-01",
		"GET Microsoft.DBforPostgreSQL/flexibleServers/legacy?2022-12-01",
		"GET Microsoft.DBforMySQL/flexibleServers/legacy?2021-05-01",
		"GET Microsoft.DBforMySQL/flexibleServers/legacy/firewallRules?2021-05-01",
	}
	if got := strings.Join(fake.hits, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	if _, err := fw.ReadServer(ctx, ServerRef{ResourceGroup: "rg", Name: "absent"}); err != ErrServerNotFound {
		t.Errorf("absent server: %v", err)
	}
}

func TestReadDatabases(t *testing.T) {
	_, fw := newFakeARM(t)
	ctx := context.Background()
	target := appservice.Target{ResourceGroup: "rg", App: "app"}
	facts := &Facts{AppSettings: map[string]string{
		"DATABASE_URL": "postgres://u:pw@paged.postgres.database.azure.com/db",
		"LOCKED":       "host=locked.postgres.database.azure.com",
		"GONE":         "gone.postgres.database.azure.com",
	}}

	dbs, checked, notChecked, err := readDatabases(ctx, Options{Target: target}, facts, fw, progress.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(dbs) != 1 || dbs[0].Name != "paged" || len(checked) != 1 {
		t.Errorf("dbs = %+v, checked = %v", dbs, checked)
	}
	nc := strings.Join(notChecked, "\n")
	if !strings.Contains(nc, "gone (named in the app's settings): not found in resource group rg") || !strings.Contains(nc, "locked: HTTP 403") {
		t.Errorf("notChecked = %v", notChecked)
	}
	if strings.Contains(nc+strings.Join(checked, ""), "pw@") {
		t.Error("a setting value was printed")
	}

	// An explicit server that does not exist is bad input.
	_, _, _, err = readDatabases(ctx, Options{Target: target, DBServer: "absent"}, facts, fw, progress.Discard)
	if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(p.What, "absent") {
		t.Errorf("explicit absent server: %v", err)
	}
	// An explicit server replaces discovery.
	dbs, _, notChecked, err = readDatabases(ctx, Options{Target: target, DBServer: "legacy"}, facts, fw, progress.Discard)
	if err != nil || len(dbs) != 1 || dbs[0].Kind != KindMySQL || len(notChecked) != 0 {
		t.Errorf("explicit legacy: %+v %v %v", dbs, notChecked, err)
	}
	// Nothing named: said so.
	_, _, notChecked, _ = readDatabases(ctx, Options{Target: target}, &Facts{}, fw, progress.Discard)
	if len(notChecked) != 1 || !strings.Contains(notChecked[0], "--db-server") {
		t.Errorf("no servers: %v", notChecked)
	}
}
