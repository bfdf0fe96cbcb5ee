// Package doctor reads a Django app's App Service configuration (and,
// optionally, its Django settings as App Service would load them) and
// reports what the "Django on Azure" talk and Django's deployment checklist
// warn about, each finding with a one-line fix.
//
// Levels:
//   - error: the site or its data is exposed now, or the site is broken:
//     DEBUG on, ALLOWED_HOSTS empty, SECRET_KEY in code, HTTPS-only off, a
//     database firewall rule open to every address.
//   - warning: a risk or a cost that a production site should not carry:
//     basic auth (SCM/FTP) allowed, plain FTP, no health check path, Always
//     On off on a production plan, the database firewall open to all of
//     Azure or to a wide range, a weak SECRET_KEY, static files served by
//     the app (or not served at all) instead of Blob Storage/CDN, Django
//     settings that could not be loaded.
//   - info: worth knowing, nothing to fix in most apps (ALLOWED_HOSTS = *,
//     Always On off on a Basic plan).
//
// Reading is read-only: ARM GETs (and the POST list calls ARM uses for
// app settings and connection strings) and, for the project, Python
// importing the settings module with bytecode writing off. App setting
// values are used, never printed.
package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/djdeploy/djdeploy/internal/appservice"
	"github.com/djdeploy/djdeploy/internal/progress"
)

// Level is a finding's severity.
type Level string

const (
	Error   Level = "error"
	Warning Level = "warning"
	Info    Level = "info"
)

func (l Level) rank() int {
	switch l {
	case Error:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Finding is one problem with its fix.
type Finding struct {
	ID      string `json:"id"` // stable check name, e.g. https-only
	Level   Level  `json:"level"`
	Where   string `json:"where"`   // the resource, setting or file:line concerned
	Message string `json:"message"` // what is wrong, one line
	Fix     string `json:"fix"`     // how to fix it, one line
}

// Report is doctor's result.
type Report struct {
	Target   string    `json:"target"`
	Findings []Finding `json:"findings"`
	// Checked lists what was read; NotChecked what could not be, and why.
	Checked    []string `json:"checked"`
	NotChecked []string `json:"notChecked"`
	Errors     int      `json:"errors"`
	Warnings   int      `json:"warnings"`
	Infos      int      `json:"infos"`
}

// Failed reports whether the findings fail the run: any error, or with
// strict any warning too.
func (r *Report) Failed(strict bool) bool {
	return r.Errors > 0 || (strict && r.Warnings > 0)
}

// AppReader is what doctor reads from App Service (appservice.Client).
type AppReader interface {
	ReadPosture(ctx context.Context, t appservice.Target) (*appservice.Posture, error)
	AppSettings(ctx context.Context, t appservice.Target) (map[string]string, error)
	ConnectionStrings(ctx context.Context, t appservice.Target) (map[string]appservice.ConnectionString, error)
}

// Options say what to check.
type Options struct {
	Target appservice.Target
	// CDN is "profile/endpoint" when a CDN or Front Door endpoint is
	// configured for the static files ("" = none).
	CDN string
	// ProjectDir is the Django project; "" skips the Django checks.
	ProjectDir string
	// Python runs the settings ("" = the project's .venv, else python3).
	Python string
	// DBServer is a flexible server's resource id, or its name (then in
	// DBResourceGroup, else the app's group). "" = the servers named by the
	// app's settings and connection strings.
	DBServer        string
	DBResourceGroup string
	Getenv          func(string) string
}

// Run gathers the facts and evaluates the rules. db may be nil (no
// database checks).
func Run(ctx context.Context, o Options, app AppReader, db FirewallReader, log progress.Reporter) (*Report, error) {
	if log == nil {
		log = progress.Discard
	}
	f := &Facts{Target: o.Target, CDN: o.CDN}
	rep := &Report{Target: o.Target.String(), Findings: []Finding{}, Checked: []string{}, NotChecked: []string{}}

	log.Infof("reading %s", o.Target)
	p, err := app.ReadPosture(ctx, o.Target)
	if err != nil {
		return nil, err
	}
	f.Posture = p
	rep.Checked = append(rep.Checked, "site configuration of "+o.Target.String())
	for _, u := range p.Unread {
		rep.NotChecked = append(rep.NotChecked, u)
	}
	if f.AppSettings, err = app.AppSettings(ctx, o.Target); err != nil {
		return nil, err
	}
	rep.Checked = append(rep.Checked, fmt.Sprintf("%d app settings (names only are ever printed)", len(f.AppSettings)))
	if f.ConnStrings, err = app.ConnectionStrings(ctx, o.Target); err != nil {
		// Reading connection strings needs the same right as app settings;
		// a failure here costs only the database discovery from them.
		rep.NotChecked = append(rep.NotChecked, "connection strings: "+err.Error())
		f.ConnStrings = nil
	}

	if o.ProjectDir != "" {
		log.Infof("loading the Django settings of %s with the app settings of %s", o.ProjectDir, o.Target)
		dj, lits, err := inspectProject(ctx, o, f)
		if err != nil {
			return nil, err
		}
		f.Django, f.Literals = dj, lits
		if dj != nil && dj.LoadError == "" {
			rep.Checked = append(rep.Checked, "Django settings "+dj.Module+" (as App Service loads them)")
		}
	} else {
		rep.NotChecked = append(rep.NotChecked, "Django settings (DEBUG, ALLOWED_HOSTS, SECRET_KEY, static files): pass --project to check them")
	}

	if db != nil {
		dbs, checked, notChecked, err := readDatabases(ctx, o, f, db, log)
		if err != nil {
			return nil, err
		}
		f.Databases = dbs
		rep.Checked = append(rep.Checked, checked...)
		rep.NotChecked = append(rep.NotChecked, notChecked...)
	}

	rep.Findings = Evaluate(f)
	for _, x := range rep.Findings {
		switch x.Level {
		case Error:
			rep.Errors++
		case Warning:
			rep.Warnings++
		default:
			rep.Infos++
		}
	}
	return rep, nil
}

// Facts are everything the rules look at.
type Facts struct {
	Target      appservice.Target
	Posture     *appservice.Posture
	AppSettings map[string]string // values are secrets: evaluate, never print
	ConnStrings map[string]appservice.ConnectionString
	CDN         string
	Django      *DjangoFacts // nil: project not checked
	// MissingServer lists gunicorn and/or uvicorn when the project's
	// requirements.txt lacks them (the app's startup command needs both).
	MissingServer []string
	Literals      []Literal // string literals of the settings files
	Databases     []Database
}

// sortFindings orders by level, then check, then place.
func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Level.rank() != fs[j].Level.rank() {
			return fs[i].Level.rank() < fs[j].Level.rank()
		}
		if fs[i].ID != fs[j].ID {
			return fs[i].ID < fs[j].ID
		}
		return fs[i].Where < fs[j].Where
	})
}

// azTarget is the "-g RG -n APP [--slot S]" part of az commands.
func azTarget(t appservice.Target) string {
	s := fmt.Sprintf("-g %s -n %s", t.ResourceGroup, t.App)
	if !t.IsProduction() {
		s += " --slot " + t.Slot
	}
	return s
}

func truthy(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "1", "true", "yes", "on", "y", "t":
		return true
	}
	return false
}
