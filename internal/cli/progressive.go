package cli

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/gates"
	"github.com/djdeploy/djdeploy/internal/insights"
	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/djdeploy/djdeploy/internal/progress"
	"github.com/djdeploy/djdeploy/internal/release"
	"github.com/djdeploy/djdeploy/internal/settings"
)

// appInsightsSetting is the app setting App Service's Application Insights
// integration sets on the site.
const appInsightsSetting = "APPLICATIONINSIGHTS_CONNECTION_STRING"

// progressiveOptions reads the canary, gate, watch and Application Insights
// settings. Bad values are usage errors found before anything changes; the
// Azure reads (the component, the production URL) happen only when a canary
// or a watch needs them.
func progressiveOptions(ctx context.Context, vals *settings.Values, acc *AzureAccess, app *appservice.Client, hc *http.Client, target appservice.Target, rep progress.Reporter) (release.Progressive, error) {
	p := release.Progressive{Strategy: vals.String("strategy"), Interval: vals.Duration("canary-interval"), Watch: vals.Duration("watch")}
	rate, err := parsePercent("max-failure-rate", vals.String("max-failure-rate"))
	if err != nil {
		return p, err
	}
	p.Gate = gates.Thresholds{MaxFailureRate: rate, MaxP95: vals.Duration("max-p95"), MinRequests: vals.Int("min-requests")}
	if p.Strategy == release.StrategyCanary {
		for _, s := range vals.List("canary-steps") {
			f, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(s), "%"), 64)
			if err != nil {
				return p, problem.Usagef("give percentages, e.g. --canary-steps 5,25,50", "canary step %q is not a number", s)
			}
			p.Steps = append(p.Steps, f)
		}
	}
	needMeter := p.Strategy == release.StrategyCanary || p.Watch > 0
	if needMeter {
		// Validated without a meter first: bad steps are usage errors
		// before any Azure read.
		probe := p
		probe.Meter = func(appservice.Target) gates.Meter { return nil }
		if err := probe.Validate(); err != nil {
			return p, err
		}
	} else if err := p.Validate(); err != nil {
		return p, err
	}

	var ai *insights.Client
	component := vals.String("app-insights")
	if component != "" || needMeter {
		ai, err = insights.New(acc.Credential, acc.Options, vals.String("app-insights-endpoint"))
		if err != nil {
			return p, err
		}
	}
	if component != "" {
		p.Annotate = func(ctx context.Context, name string, props map[string]string) error {
			return ai.Annotate(ctx, component, insights.Annotation{Name: name, Time: time.Now(), Properties: props})
		}
	}
	if !needMeter {
		return p, nil
	}

	prod := appservice.Target{ResourceGroup: target.ResourceGroup, App: target.App}
	if p.Strategy == release.StrategyCanary {
		if err := app.CheckSlotsAllowed(ctx, prod); err != nil {
			return p, err
		}
	}
	// A ready access token is ARM's: the query API will not take it.
	readyToken := vals.String("access-token") != "" && (vals.String("credential") == "" || vals.String("credential") == "auto")
	if readyToken && component != "" {
		return p, problem.Usagef("use a credential that can get tokens for Application Insights (OIDC, client secret, managed identity), or leave out --app-insights to judge djdeploy's own probes",
			"the gates read Application Insights, but a ready --access-token only works for Azure Resource Manager")
	}
	appID := ""
	if component != "" {
		c, err := ai.GetComponent(ctx, component)
		if err != nil {
			return p, err
		}
		appID = c.AppID
	} else if set, err := app.AppSettings(ctx, prod); err == nil && !readyToken {
		appID = insights.AppIDFromConnectionString(set[appInsightsSetting])
	}
	if appID != "" {
		rep.Infof("gates: from Application Insights (AppId %s), per slot", appID)
		p.Meter = func(t appservice.Target) gates.Meter {
			role := t.App
			if !t.IsProduction() {
				role += "-" + t.Slot
			}
			return &gates.Insights{Client: ai, AppID: appID, Role: role, Lag: 0}
		}
		return p, p.Validate()
	}
	// No Application Insights: djdeploy's own requests are the only traffic
	// it can see. The slot is reached through production's host with App
	// Service's routing cookie, as its canary visitors reach it.
	base, err := app.SiteURL(ctx, prod)
	if err != nil {
		return p, err
	}
	path := vals.String("health-path")
	if path == "" {
		path = "/"
	}
	rep.Warnf("gates: no Application Insights (set --app-insights or %s on the site): judging djdeploy's own probes of production's host instead", appInsightsSetting)
	p.Meter = func(t appservice.Target) gates.Meter {
		pr := &gates.Probes{HTTP: hc, URL: base + "/" + strings.TrimPrefix(path, "/"), Target: t.String()}
		if !t.IsProduction() {
			pr.Cookie = &http.Cookie{Name: "x-ms-routing-name", Value: t.Slot}
		} else {
			pr.Cookie = &http.Cookie{Name: "x-ms-routing-name", Value: "self"}
		}
		return pr
	}
	return p, p.Validate()
}

// parsePercent reads "1%" or "0.5%" as a fraction.
func parsePercent(name, raw string) (float64, error) {
	s, ok := strings.CutSuffix(strings.TrimSpace(raw), "%")
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if !ok || err != nil || f < 0 || f > 100 {
		return 0, problem.Usagef("give a percentage from 0% to 100%, e.g. --"+name+" 1%", "--%s %q is not a percentage", name, raw)
	}
	return f / 100, nil
}

// annotationProps are the CI facts each release annotation carries.
func annotationProps(getenv func(string) string) map[string]string {
	props := map[string]string{"RunURL": staticLockHolder(getenv)}
	for _, k := range []string{"GITHUB_SHA", "BUILD_SOURCEVERSION"} {
		if v := getenv(k); v != "" {
			props["Commit"] = v
		}
	}
	return props
}
