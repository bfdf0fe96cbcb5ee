package doctor

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/appservice"
)

func ptr[T any](v T) *T { return &v }

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// good is a site with nothing to report.
func good() *Facts {
	return &Facts{
		Target: appservice.Target{ResourceGroup: "rg", App: "app"},
		Posture: &appservice.Posture{
			Site:      appservice.Site{DefaultHostName: "app.azurewebsites.net"},
			HTTPSOnly: ptr(true), AlwaysOn: ptr(true), FTPSState: "Disabled", HealthCheckPath: "/healthz", ConfigRead: true,
			SCMBasicAuth: ptr(false), FTPBasicAuth: ptr(false), PlanSKU: "P1v3", PlanTier: "PremiumV3",
		},
		AppSettings: map[string]string{"SECRET_KEY": "k"},
		Django: &DjangoFacts{Module: "mysite.settings", AllowedHosts: []string{"app.azurewebsites.net"}, HostAllowed: ptr(true),
			SecretKeySet: true, SecretKeyHash: hash("a-long-random-key"), StaticURL: "https://cdn.example.net/static/"},
		Literals:  []Literal{{File: "mysite/settings.py", Line: 3, SHA256: hash("django-insecure-dev")}},
		Databases: []Database{{Kind: KindPostgreSQL, ResourceGroup: "rg", Name: "db", PublicNetworkAccess: "Enabled", Rules: []FirewallRule{{Name: "office", Start: "203.0.113.1", End: "203.0.113.9"}}}},
	}
}

func TestEvaluate(t *testing.T) {
	type want struct {
		id    string
		level Level
	}
	cases := []struct {
		name   string
		change func(f *Facts)
		want   []want // exactly these findings (id + level), any order
		fixHas string // a substring of the first finding's fix
	}{
		{"nothing to report", func(f *Facts) {}, nil, ""},
		{"https only off", func(f *Facts) { f.Posture.HTTPSOnly = ptr(false) }, []want{{"https-only", Error}}, "az webapp update -g rg -n app --https-only true"},
		{"https only on a slot", func(f *Facts) { f.Target.Slot = "staging"; f.Posture.HTTPSOnly = ptr(false) }, []want{{"https-only", Error}}, "--slot staging --https-only true"},
		{"https only unknown is no finding", func(f *Facts) { f.Posture.HTTPSOnly = nil }, nil, ""},
		{"scm basic auth", func(f *Facts) { f.Posture.SCMBasicAuth = ptr(true) }, []want{{"scm-basic-auth", Warning}}, "--parent sites/app --name scm --set properties.allow=false"},
		{"ftp basic auth on a slot", func(f *Facts) { f.Target.Slot = "staging"; f.Posture.FTPBasicAuth = ptr(true) }, []want{{"ftp-basic-auth", Warning}}, "--parent sites/app/slots/staging --name ftp"},
		{"plain ftp", func(f *Facts) { f.Posture.FTPSState = "AllAllowed" }, []want{{"ftp-plain", Warning}}, "--ftps-state Disabled"},
		{"ftps only is fine", func(f *Facts) { f.Posture.FTPSState = "FtpsOnly" }, nil, ""},
		{"no health check", func(f *Facts) { f.Posture.HealthCheckPath = "" }, []want{{"health-check", Warning}}, "healthCheckPath"},
		{"health check unknown when config unread", func(f *Facts) { f.Posture.HealthCheckPath = ""; f.Posture.ConfigRead = false }, nil, ""},
		{"always on off, premium", func(f *Facts) { f.Posture.AlwaysOn = ptr(false) }, []want{{"always-on", Warning}}, "--always-on true"},
		{"always on off, standard by sku only", func(f *Facts) { f.Posture.AlwaysOn = ptr(false); f.Posture.PlanTier = ""; f.Posture.PlanSKU = "S1" }, []want{{"always-on", Warning}}, ""},
		{"always on off, basic", func(f *Facts) { f.Posture.AlwaysOn = ptr(false); f.Posture.PlanSKU, f.Posture.PlanTier = "B1", "Basic" }, []want{{"always-on", Info}}, ""},
		{"always on off, free", func(f *Facts) { f.Posture.AlwaysOn = ptr(false); f.Posture.PlanSKU, f.Posture.PlanTier = "F1", "Free" }, nil, ""},
		{"always on off, plan unknown", func(f *Facts) { f.Posture.AlwaysOn = ptr(false); f.Posture.PlanSKU, f.Posture.PlanTier = "", "" }, nil, ""},

		{"requirements without uvicorn", func(f *Facts) { f.MissingServer = []string{"uvicorn"} }, []want{{"startup-packages", Error}}, "add uvicorn to requirements.txt"},

		{"debug on via app setting", func(f *Facts) { f.Django.Debug = true; f.AppSettings["DEBUG"] = "True" }, []want{{"debug", Error}}, "--settings DEBUG=false"},
		{"debug on in code", func(f *Facts) { f.Django.Debug = true }, []want{{"debug", Error}}, "DEBUG = os.environ.get"},
		{"debug app setting ignored by the settings", func(f *Facts) { f.AppSettings["DEBUG"] = "true" }, nil, ""},
		{"debug app setting without project", func(f *Facts) { f.Django = nil; f.AppSettings["DJANGO_DEBUG"] = "1" }, []want{{"debug", Error}}, "DJANGO_DEBUG=false"},
		{"debug false app setting without project", func(f *Facts) { f.Django = nil; f.AppSettings["DEBUG"] = "false" }, nil, ""},
		{"allowed hosts empty", func(f *Facts) { f.Django.AllowedHosts = nil; f.Django.HostAllowed = ptr(false) }, []want{{"allowed-hosts", Error}}, "app.azurewebsites.net"},
		{"allowed hosts star", func(f *Facts) { f.Django.AllowedHosts = []string{"*"} }, []want{{"allowed-hosts", Info}}, ""},
		{"allowed hosts miss the site", func(f *Facts) { f.Django.AllowedHosts = []string{"www.example.com"}; f.Django.HostAllowed = ptr(false) }, []want{{"allowed-hosts", Warning}}, "WEBSITE_HOSTNAME"},
		{"secret key literal assignment", func(f *Facts) {
			f.Literals = append(f.Literals, Literal{File: "mysite/settings.py", Line: 9, SHA256: hash("abc"), SecretKey: true})
		}, []want{{"secret-key-in-code", Error}}, "os.environ"},
		{"secret key literal reported once when also in effect", func(f *Facts) {
			f.Literals = append(f.Literals, Literal{File: "mysite/settings.py", Line: 9, SHA256: hash("abc"), SecretKey: true})
			f.Django.SecretKeyHash = hash("abc")
			f.Django.SecretKeyWeak = true
		}, []want{{"secret-key-in-code", Error}}, ""},
		{"secret key fallback in effect", func(f *Facts) { f.Django.SecretKeyHash = hash("django-insecure-dev"); f.Django.SecretKeyWeak = true }, []want{{"secret-key-in-code", Error}}, "SECRET_KEY=<50+ random characters>"},
		{"secret key weak", func(f *Facts) { f.Django.SecretKeyWeak = true }, []want{{"secret-key-weak", Warning}}, "token_urlsafe"},
		{"secret key missing", func(f *Facts) { f.Django.SecretKeySet = false; f.Django.SecretKeyHash = "" }, []want{{"secret-key-missing", Error}}, ""},
		{"settings did not load", func(f *Facts) { f.Django.LoadError = "ModuleNotFoundError: No module named 'environ'" }, []want{{"django-settings", Warning}}, "--python"},

		{"whitenoise serves static", func(f *Facts) {
			f.Django.StaticURL = "/static/"
			f.Django.Middleware = []string{"django.middleware.security.SecurityMiddleware", "whitenoise.middleware.WhiteNoiseMiddleware"}
		}, []want{{"static-files", Warning}}, "STATIC_URL"},
		{"whitenoise with an absolute STATIC_URL is fine", func(f *Facts) {
			f.Django.Middleware = []string{"whitenoise.middleware.WhiteNoiseMiddleware"}
		}, nil, ""},
		{"relative STATIC_URL with a CDN", func(f *Facts) { f.Django.StaticURL = "/static/"; f.CDN = "fd/ep" }, []want{{"static-files", Warning}}, ""},
		{"relative STATIC_URL, nothing serves it", func(f *Facts) { f.Django.StaticURL = "/static/" }, []want{{"static-files", Warning}}, ""},
		{"relative STATIC_URL, Azure storage backend", func(f *Facts) {
			f.Django.StaticURL = "/static/"
			f.Django.StaticStorage = "storages.backends.azure_storage.AzureStorage"
		}, nil, ""},
		{"relative STATIC_URL app setting with a CDN, no project", func(f *Facts) {
			f.Django = nil
			f.CDN = "fd/ep"
			f.AppSettings["STATIC_URL"] = "/static/"
		}, []want{{"static-files", Warning}}, ""},

		{"firewall open to all", func(f *Facts) {
			f.Databases[0].Rules = append(f.Databases[0].Rules, FirewallRule{Name: "AllowAll", Start: "0.0.0.0", End: "255.255.255.255"})
		}, []want{{"db-firewall-open", Error}}, "az postgres flexible-server firewall-rule delete -g rg -n db --rule-name AllowAll --yes"},
		{"firewall allows azure services (mysql)", func(f *Facts) {
			f.Databases[0].Kind = KindMySQL
			f.Databases[0].Rules = []FirewallRule{{Name: "AllowAzure", Start: "0.0.0.0", End: "0.0.0.0"}}
		}, []want{{"db-firewall-azure", Warning}}, "az mysql flexible-server firewall-rule delete"},
		{"firewall wide range", func(f *Facts) {
			f.Databases[0].Rules = []FirewallRule{{Name: "wide", Start: "10.0.0.0", End: "10.255.255.255"}}
		}, []want{{"db-firewall-wide", Warning}}, ""},
		{"firewall open but private access", func(f *Facts) {
			f.Databases[0].PublicNetworkAccess = "Disabled"
			f.Databases[0].Rules = []FirewallRule{{Name: "AllowAll", Start: "0.0.0.0", End: "255.255.255.255"}}
		}, nil, ""},
		{"firewall rule with bad addresses is ignored", func(f *Facts) {
			f.Databases[0].Rules = []FirewallRule{{Name: "odd", Start: "255.255.255.255", End: "0.0.0.0"}, {Name: "v6", Start: "::", End: "::1"}}
		}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := good()
			c.change(f)
			got := Evaluate(f)
			var gotIDs, wantIDs []string
			for _, g := range got {
				gotIDs = append(gotIDs, g.ID+"/"+string(g.Level))
				if g.Fix == "" || g.Message == "" || g.Where == "" {
					t.Errorf("finding %s lacks a fix, message or place: %+v", g.ID, g)
				}
				if strings.Contains(g.Fix, "\n") || strings.Contains(g.Message, "\n") {
					t.Errorf("finding %s is not one line: %+v", g.ID, g)
				}
			}
			for _, w := range c.want {
				wantIDs = append(wantIDs, w.id+"/"+string(w.level))
			}
			sort.Strings(gotIDs)
			sort.Strings(wantIDs)
			if strings.Join(gotIDs, ",") != strings.Join(wantIDs, ",") {
				t.Fatalf("findings = %v, want %v\n%+v", gotIDs, wantIDs, got)
			}
			if c.fixHas != "" && !strings.Contains(got[0].Fix, c.fixHas) {
				t.Errorf("fix %q does not contain %q", got[0].Fix, c.fixHas)
			}
			for _, g := range got {
				for k, v := range f.AppSettings {
					if len(v) >= 4 && (strings.Contains(g.Message, v) || strings.Contains(g.Fix, v) || strings.Contains(g.Where, v)) {
						t.Errorf("finding %s prints the value of app setting %s", g.ID, k)
					}
				}
			}
		})
	}
}

func TestFindingsSortedAndCounted(t *testing.T) {
	f := good()
	f.Posture.SCMBasicAuth = ptr(true)
	f.Posture.HTTPSOnly = ptr(false)
	f.Django.AllowedHosts = []string{"*"}
	got := Evaluate(f)
	if len(got) != 3 || got[0].Level != Error || got[1].Level != Warning || got[2].Level != Info {
		t.Fatalf("not sorted by level: %+v", got)
	}
	r := &Report{Errors: 0, Warnings: 1}
	if r.Failed(false) || !r.Failed(true) {
		t.Error("a warning must fail only with strict")
	}
	r.Errors = 1
	if !r.Failed(false) {
		t.Error("an error must fail")
	}
}

func TestScanLiterals(t *testing.T) {
	src := `import os
SECRET_KEY = 'django-insecure-abc123def456'  # TODO
SECRET_KEY: str = "typed-literal-key-xyz"
SECRET_KEY = os.environ.get("SECRET_KEY", "fallback-literal-key")
# SECRET_KEY = 'commented-out-literal'
OTHER = "short"
"""SECRET_KEY = 'in-a-docstring-key'"""
API = r'raw-literal\d+'
`
	lits := scanLiterals("s.py", []byte(src))
	byHash := map[string]Literal{}
	for _, l := range lits {
		byHash[l.SHA256] = l
	}
	check := func(s string, line int, secret, present bool) {
		t.Helper()
		l, ok := byHash[hash(s)]
		if ok != present {
			t.Fatalf("%q found=%v, want %v (%+v)", s, ok, present, lits)
		}
		if ok && (l.Line != line || l.SecretKey != secret) {
			t.Errorf("%q = %+v, want line %d secret %v", s, l, line, secret)
		}
	}
	check("django-insecure-abc123def456", 2, true, true)
	check("typed-literal-key-xyz", 3, true, true)
	check("fallback-literal-key", 4, false, true) // found by the runtime comparison, not as an assignment
	check("SECRET_KEY", 4, false, true)
	check("commented-out-literal", 0, false, false)
	check("short", 0, false, false)
	check("in-a-docstring-key", 0, false, false)
	check(`raw-literal\d+`, 8, false, true)
}

func TestDiscoverServers(t *testing.T) {
	f := &Facts{
		AppSettings: map[string]string{
			"DATABASE_URL":          "postgres://u:p@Shop-DB.postgres.database.azure.com:5432/shop",
			"AZURE_POSTGRESQL_HOST": "shop-db.postgres.database.azure.com",
			"OTHER":                 "https://example.com",
		},
		ConnStrings: map[string]appservice.ConnectionString{
			"legacy": {Type: "MySql", Value: "Server=old-db.mysql.database.azure.com;Database=x;Uid=u;Pwd=p"},
			"priv":   {Type: "PostgreSQL", Value: "host=inner.private.postgres.database.azure.com dbname=x"},
		},
		Django: &DjangoFacts{DatabaseHosts: []string{"localhost", "shop-db.postgres.database.azure.com"}},
	}
	got := discoverServers(f)
	var s []string
	for _, r := range got {
		s = append(s, r.Kind+":"+r.Name)
	}
	if strings.Join(s, ",") != "PostgreSQL:inner,MySQL:old-db,PostgreSQL:shop-db" {
		t.Errorf("servers = %v", s)
	}
}

func TestParseServer(t *testing.T) {
	cases := []struct {
		in, group string
		want      ServerRef
		bad       bool
	}{
		{"my-db", "rg", ServerRef{Name: "my-db", ResourceGroup: "rg"}, false},
		{"/subscriptions/s/resourceGroups/data/providers/Microsoft.DBforPostgreSQL/flexibleServers/pg1", "rg", ServerRef{Kind: KindPostgreSQL, ResourceGroup: "data", Name: "pg1"}, false},
		{"/subscriptions/s/resourceGroups/data/providers/Microsoft.DBforMySQL/flexibleServers/my1", "rg", ServerRef{Kind: KindMySQL, ResourceGroup: "data", Name: "my1"}, false},
		{"/subscriptions/s/resourceGroups/data/providers/Microsoft.Sql/servers/sql1", "rg", ServerRef{}, true},
		{"/not/an/id", "rg", ServerRef{}, true},
	}
	for _, c := range cases {
		got, err := parseServer(c.in, c.group)
		if (err != nil) != c.bad || got != c.want {
			t.Errorf("parseServer(%q) = %+v, %v", c.in, got, err)
		}
	}
}

func TestRedact(t *testing.T) {
	f := &Facts{AppSettings: map[string]string{"DATABASE_URL": "postgres://u:hunter22@h/db", "X": "ab"},
		ConnStrings: map[string]appservice.ConnectionString{"c": {Value: "Pwd=s3cret-value"}}}
	got := redact("ValueError: bad 'postgres://u:hunter22@h/db' and Pwd=s3cret-value ab", f)
	if strings.Contains(got, "hunter22") || strings.Contains(got, "s3cret") || !strings.Contains(got, "ab") {
		t.Errorf("redact = %q", got)
	}
}
