package emulator

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/appservice/armappservice/v4"
)

const postureYAML = `
resourceGroup: demo-rg
apps:
  - name: weak-app
    slots: [staging]
    plan: {sku: S1}
    httpsOnly: false
    alwaysOn: false
    ftpsState: AllAllowed
    basicAuth: {scm: true, ftp: true}
    connectionStrings:
      db: {value: "host=weak-db.postgres.database.azure.com password=pw-secret", type: PostgreSQL}
  - name: strong-app
    httpsOnly: true
databases:
  - name: weak-db
    firewallRules:
      - {name: AllowAll, start: 0.0.0.0, end: 255.255.255.255}
      - {name: AllowAllAzureServicesAndResourcesWithinAzureIps_2024-1-1_0-0-0, start: 0.0.0.0, end: 0.0.0.0}
  - name: my-db
    kind: mysql
    resourceGroup: data-rg
    publicNetworkAccess: Disabled
`

func startPosture(t *testing.T) *Emulator {
	t.Helper()
	res, err := ParseResources([]byte(postureYAML))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Start(context.Background(), Config{Resources: res, Python: appPython(t), Log: testLog{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// rawGET reads an ARM path through an SDK pipeline (as clients without a
// generated SDK module do) and decodes the JSON body.
func rawGET(t *testing.T, e *Emulator, path, apiVersion string, out any) int {
	t.Helper()
	c, err := arm.NewClient("emulator-test", "v0.0.1", staticCred(e.Token()), armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	req, err := runtime.NewRequest(context.Background(), http.MethodGet, runtime.JoinPaths(c.Endpoint(), path)+"?api-version="+apiVersion)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Pipeline().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestPostureThroughSDK(t *testing.T) {
	e := startPosture(t)
	ctx := context.Background()
	c := webApps(t, e, staticCred(e.Token()))

	site, err := c.Get(ctx, "demo-rg", "weak-app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if site.Properties.HTTPSOnly == nil || *site.Properties.HTTPSOnly {
		t.Errorf("weak-app httpsOnly = %v, want false", site.Properties.HTTPSOnly)
	}
	strong, err := c.Get(ctx, "demo-rg", "strong-app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*strong.Properties.HTTPSOnly {
		t.Error("strong-app httpsOnly = false, want true")
	}
	cfg, err := c.GetConfiguration(ctx, "demo-rg", "weak-app", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Properties.AlwaysOn || *cfg.Properties.FtpsState != armappservice.FtpsStateAllAllowed {
		t.Errorf("alwaysOn=%v ftpsState=%v", *cfg.Properties.AlwaysOn, *cfg.Properties.FtpsState)
	}
	scm, err := c.GetScmAllowed(ctx, "demo-rg", "weak-app", nil)
	if err != nil {
		t.Fatal(err)
	}
	ftp, err := c.GetFtpAllowedSlot(ctx, "demo-rg", "weak-app", "staging", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !*scm.Properties.Allow || !*ftp.Properties.Allow {
		t.Errorf("basic auth scm=%v ftp(staging)=%v, want both allowed", *scm.Properties.Allow, *ftp.Properties.Allow)
	}
	if got := *scm.ID; !strings.HasSuffix(got, "/sites/weak-app/basicPublishingCredentialsPolicies/scm") {
		t.Errorf("policy id %s", got)
	}
	// strong-app keeps the emulator's default: basic auth off.
	sscm, err := c.GetScmAllowed(ctx, "demo-rg", "strong-app", nil)
	if err != nil || *sscm.Properties.Allow {
		t.Errorf("strong-app scm allow = %v, %v", sscm.Properties, err)
	}
	// PUT turns it off as `az resource update` would.
	if _, err := c.UpdateScmAllowed(ctx, "demo-rg", "weak-app", armappservice.CsmPublishingCredentialsPoliciesEntity{
		Properties: &armappservice.CsmPublishingCredentialsPoliciesEntityProperties{Allow: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if scm, _ = c.GetScmAllowed(ctx, "demo-rg", "weak-app", nil); *scm.Properties.Allow {
		t.Error("PUT allow=false did not stick")
	}

	cs, err := c.ListConnectionStrings(ctx, "demo-rg", "weak-app", nil)
	if err != nil {
		t.Fatal(err)
	}
	db := cs.Properties["db"]
	if db == nil || *db.Type != armappservice.ConnectionStringTypePostgreSQL || !strings.Contains(*db.Value, "weak-db.postgres") {
		t.Errorf("connection strings = %+v", cs.Properties)
	}

	// SetPosture (the admin endpoint's Go side) changes what ARM reports.
	if err := e.SetPosture(Posture{App: "weak-app", HTTPSOnly: to.Ptr(true), AlwaysOn: to.Ptr(true), HealthCheckPath: to.Ptr("/healthz")}); err != nil {
		t.Fatal(err)
	}
	site, _ = c.Get(ctx, "demo-rg", "weak-app", nil)
	cfg, _ = c.GetConfiguration(ctx, "demo-rg", "weak-app", nil)
	if !*site.Properties.HTTPSOnly || !*cfg.Properties.AlwaysOn || *cfg.Properties.HealthCheckPath != "/healthz" {
		t.Errorf("after SetPosture: httpsOnly=%v alwaysOn=%v health=%q", *site.Properties.HTTPSOnly, *cfg.Properties.AlwaysOn, *cfg.Properties.HealthCheckPath)
	}
	if err := e.SetPosture(Posture{App: "weak-app", FTPSState: to.Ptr("Sometimes")}); err == nil {
		t.Error("a bad ftpsState was accepted")
	}
}

type ruleList struct {
	Value []struct {
		ID, Name, Type string
		Properties     struct{ StartIPAddress, EndIPAddress string }
	}
}

func TestDatabaseFirewallRules(t *testing.T) {
	e := startPosture(t)
	sub := e.Subscription()
	pg := "/subscriptions/" + sub + "/resourceGroups/demo-rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/weak-db"

	var server struct {
		Name       string
		Type       string
		Properties struct {
			FullyQualifiedDomainName string
			Network                  struct{ PublicNetworkAccess string }
		}
	}
	if code := rawGET(t, e, pg, "2022-12-01", &server); code != 200 {
		t.Fatalf("server GET %d", code)
	}
	if server.Type != "Microsoft.DBforPostgreSQL/flexibleServers" || server.Properties.FullyQualifiedDomainName != "weak-db.postgres.database.azure.com" || server.Properties.Network.PublicNetworkAccess != "Enabled" {
		t.Errorf("server = %+v", server)
	}
	var rules ruleList
	if code := rawGET(t, e, pg+"/firewallRules", "2022-12-01", &rules); code != 200 {
		t.Fatalf("rules GET %d", code)
	}
	if len(rules.Value) != 2 || rules.Value[0].Name != "AllowAll" || rules.Value[0].Properties.StartIPAddress != "0.0.0.0" ||
		rules.Value[0].Properties.EndIPAddress != "255.255.255.255" || rules.Value[0].Type != "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules" ||
		rules.Value[0].ID != pg+"/firewallRules/AllowAll" {
		t.Errorf("rules = %+v", rules)
	}

	// MySQL in its own group; the PostgreSQL provider does not know it.
	my := "/subscriptions/" + sub + "/resourceGroups/data-rg/providers/Microsoft.DBforMySQL/flexibleServers/my-db"
	if code := rawGET(t, e, my, "2021-05-01", &server); code != 200 || server.Properties.Network.PublicNetworkAccess != "Disabled" || server.Properties.FullyQualifiedDomainName != "my-db.mysql.database.azure.com" {
		t.Errorf("mysql server: %d %+v", code, server)
	}
	if code := rawGET(t, e, my+"/firewallRules", "2021-05-01", &rules); code != 200 || len(rules.Value) != 0 {
		t.Errorf("mysql rules: %d %+v", code, rules)
	}
	if code := rawGET(t, e, "/subscriptions/"+sub+"/resourceGroups/data-rg/providers/Microsoft.DBforPostgreSQL/flexibleServers/my-db/firewallRules", "2022-12-01", nil); code != 404 {
		t.Errorf("unknown PostgreSQL server answered %d, want 404", code)
	}

	// The admin endpoint replaces the rules.
	body := `[{"name":"office","startIpAddress":"203.0.113.10","endIpAddress":"203.0.113.10"}]`
	resp := do(t, http.MethodPut, e.AdminURL()+"/databases/weak-db/firewall-rules", e.AdminSecret(), []byte(body), "Content-Type", "application/json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("admin PUT %d", resp.StatusCode)
	}
	rawGET(t, e, pg+"/firewallRules", "2022-12-01", &rules)
	if len(rules.Value) != 1 || rules.Value[0].Properties.StartIPAddress != "203.0.113.10" {
		t.Errorf("after admin PUT: %+v", rules)
	}
	if err := e.SetFirewallRules("weak-db", []FirewallRuleConfig{{Name: "bad", Start: "not-an-ip", End: "1.2.3.4"}}); err == nil {
		t.Error("a bad address was accepted")
	}
	// Admin posture endpoint: unknown fields are refused.
	resp = do(t, http.MethodPost, e.AdminURL()+"/posture", e.AdminSecret(), []byte(`{"app":"weak-app","httpsonly2":true}`), "Content-Type", "application/json")
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown posture field answered %d", resp.StatusCode)
	}
}

func TestPostureConfigErrors(t *testing.T) {
	for name, y := range map[string]string{
		"bad kind":      "apps: [{name: a}]\ndatabases: [{name: d, kind: oracle}]\n",
		"bad rule ip":   "apps: [{name: a}]\ndatabases: [{name: d, firewallRules: [{name: r, start: 1.2.3, end: 1.2.3.4}]}]\n",
		"bad ftpsState": "apps: [{name: a, ftpsState: Sometimes}]\n",
		"bad access":    "apps: [{name: a}]\ndatabases: [{name: d, publicNetworkAccess: Maybe}]\n",
		"unknown key":   "apps: [{name: a, httpOnly: true}]\n",
	} {
		if _, err := ParseResources([]byte(y)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
