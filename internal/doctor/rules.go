package doctor

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/djdeploy/djdeploy/internal/appservice"
)

// Evaluate turns facts into findings, sorted by level. It is pure: every
// rule is tested from Facts alone.
func Evaluate(f *Facts) []Finding {
	var out []Finding
	add := func(id string, l Level, where, msg, fix string) {
		out = append(out, Finding{ID: id, Level: l, Where: where, Message: msg, Fix: fix})
	}
	t := f.Target
	site := t.String()
	az := azTarget(t)

	if p := f.Posture; p != nil {
		if p.HTTPSOnly != nil && !*p.HTTPSOnly {
			add("https-only", Error, site, "HTTPS Only is off: the site also answers plain HTTP, so cookies and forms can travel unencrypted",
				"az webapp update "+az+" --https-only true")
		}
		if p.SCMBasicAuth != nil && *p.SCMBasicAuth {
			add("scm-basic-auth", Warning, site, "SCM (Kudu) basic auth is allowed: a leaked publish profile password can deploy code, bypassing Microsoft Entra ID",
				fmt.Sprintf("az resource update -g %s --namespace Microsoft.Web --resource-type basicPublishingCredentialsPolicies --parent %s --name scm --set properties.allow=false", t.ResourceGroup, sitesParent(t)))
		}
		if p.FTPBasicAuth != nil && *p.FTPBasicAuth {
			add("ftp-basic-auth", Warning, site, "FTP basic auth is allowed: the publish profile password can change the site's files over FTP",
				fmt.Sprintf("az resource update -g %s --namespace Microsoft.Web --resource-type basicPublishingCredentialsPolicies --parent %s --name ftp --set properties.allow=false", t.ResourceGroup, sitesParent(t)))
		}
		if strings.EqualFold(p.FTPSState, "AllAllowed") {
			add("ftp-plain", Warning, site, "plain FTP is allowed (ftpsState AllAllowed): credentials and files cross the network unencrypted",
				"az webapp config set "+az+" --ftps-state Disabled")
		}
		if p.ConfigRead && strings.TrimSpace(p.HealthCheckPath) == "" {
			add("health-check", Warning, site, "no health check path: App Service cannot take a broken instance out of rotation, and swaps warm up only /",
				"az webapp config set "+az+` --generic-configurations '{"healthCheckPath": "/healthz"}'`+" (a view that answers 200 when the app works)")
		}
		if p.AlwaysOn != nil && !*p.AlwaysOn {
			switch planClass(p.PlanSKU, p.PlanTier) {
			case "production":
				add("always-on", Warning, site, fmt.Sprintf("Always On is off on a production plan (%s): idle instances unload and the next visitor waits for a cold start", planName(p)),
					"az webapp config set "+az+" --always-on true")
			case "basic":
				add("always-on", Info, site, fmt.Sprintf("Always On is off (%s plan): idle instances unload and the next visitor waits for a cold start", planName(p)),
					"az webapp config set "+az+" --always-on true")
			}
		}
	}

	djangoRules(f, add)
	if len(f.MissingServer) > 0 {
		pkgs := strings.Join(f.MissingServer, " and ")
		add("startup-packages", Error, "requirements.txt",
			"requirements.txt lacks "+pkgs+": App Service's startup command (gunicorn -k uvicorn.workers.UvicornWorker) cannot start the app it installs",
			"add "+pkgs+" to requirements.txt, then release again")
	}
	for _, d := range f.Databases {
		databaseRules(d, add)
	}
	sortFindings(out)
	return out
}

func sitesParent(t appservice.Target) string {
	if t.IsProduction() {
		return "sites/" + t.App
	}
	return "sites/" + t.App + "/slots/" + t.Slot
}

func planName(p *appservice.Posture) string {
	if p.PlanSKU != "" {
		return p.PlanSKU
	}
	return p.PlanTier
}

// planClass sorts an App Service plan: "free" (F1, D1: no Always On),
// "basic" (B*), "production" (Standard, Premium, Isolated), "" unknown.
func planClass(sku, tier string) string {
	t := strings.ToLower(tier)
	switch {
	case t == "free" || t == "shared" || t == "dynamic":
		return "free"
	case t == "basic":
		return "basic"
	case t == "standard" || strings.HasPrefix(t, "premium") || strings.HasPrefix(t, "isolated") || t == "elasticpremium":
		return "production"
	}
	s := strings.ToUpper(sku)
	switch {
	case s == "":
		return ""
	case strings.HasPrefix(s, "F") || strings.HasPrefix(s, "D") || strings.HasPrefix(s, "Y"):
		return "free"
	case strings.HasPrefix(s, "B"):
		return "basic"
	case strings.HasPrefix(s, "S") || strings.HasPrefix(s, "P") || strings.HasPrefix(s, "I") || strings.HasPrefix(s, "EP"):
		return "production"
	}
	return ""
}

// databaseRules checks one flexible server's firewall.
func databaseRules(d Database, add func(id string, l Level, where, msg, fix string)) {
	if strings.EqualFold(d.PublicNetworkAccess, "Disabled") {
		return // private access: firewall rules do not apply
	}
	cli := "postgres"
	if d.Kind == KindMySQL {
		cli = "mysql"
	}
	del := func(rule string) string {
		return fmt.Sprintf("az %s flexible-server firewall-rule delete -g %s -n %s --rule-name %s --yes", cli, d.ResourceGroup, d.Name, rule)
	}
	for _, r := range d.Rules {
		where := fmt.Sprintf("%s server %s, rule %s", d.Kind, d.Name, r.Name)
		start, err1 := netip.ParseAddr(r.Start)
		end, err2 := netip.ParseAddr(r.End)
		if err1 != nil || err2 != nil || !start.Is4() || !end.Is4() || end.Less(start) {
			continue
		}
		n := rangeSize(start, end)
		switch {
		case n == 1<<32:
			add("db-firewall-open", Error, where, fmt.Sprintf("the database firewall admits every IPv4 address (%s-%s): anyone on the internet can try the database's password", r.Start, r.End),
				del(r.Name)+" (then use VNet integration, or rules for known addresses only)")
		case r.Start == "0.0.0.0" && r.End == "0.0.0.0":
			add("db-firewall-azure", Warning, where, "the database firewall admits all of Azure (0.0.0.0, \"allow Azure services\"): any tenant's Azure resource can try the password",
				del(r.Name)+" (then reach the database over VNet integration or a private endpoint)")
		case n > 1<<16:
			add("db-firewall-wide", Warning, where, fmt.Sprintf("the database firewall admits a wide range (%s-%s, %d addresses)", r.Start, r.End, n),
				"narrow or remove the rule: "+del(r.Name))
		}
	}
}

func rangeSize(start, end netip.Addr) uint64 {
	a, b := start.As4(), end.As4()
	s := uint64(a[0])<<24 | uint64(a[1])<<16 | uint64(a[2])<<8 | uint64(a[3])
	e := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	return e - s + 1
}
