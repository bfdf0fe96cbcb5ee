// Package settings declares every djdeploy setting once: its name, type,
// default, environment name, whether it is secret, and what it means.
//
// Everything else is derived from these declarations: cobra flags, the
// environment names read, the keys accepted in djdeploy.yaml, the inputs of
// action.yml, the parameters of the Azure Pipelines templates and the README
// table. Precedence is flag, then environment, then djdeploy.yaml, then the
// default declared here.
package settings

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// Kind is a setting's value type.
type Kind int

const (
	String Kind = iota
	Bool
	Int
	Duration
	List // comma- or newline-separated strings
)

func (k Kind) String() string {
	switch k {
	case Bool:
		return "bool"
	case Int:
		return "int"
	case Duration:
		return "duration"
	case List:
		return "list"
	}
	return "string"
}

// Setting is one declared setting.
type Setting struct {
	// Name is kebab-case; it is the flag, the file key and the action input.
	Name string
	// Env is the environment variable read for it. Empty means
	// DJDEPLOY_<NAME>; standard Azure names (AZURE_SUBSCRIPTION_ID) are set
	// explicitly.
	Env         string
	Kind        Kind
	Default     string
	Secret      bool
	Description string
	// Group orders the README table and the generated inputs.
	Group string
	// Short is an optional one-letter flag.
	Short string
	// Commands lists the commands that take it as a flag. The release
	// command takes every setting.
	Commands []string
	// CIOnly hides the setting from flags (it exists for action/pipeline
	// front ends only).
	CIOnly bool
	// Enum lists the accepted values, if the setting is a choice.
	Enum []string
	// NotRelease marks an input of one command that the release works out
	// itself (the package to deploy, the paths to purge), so release does not
	// offer it as a flag.
	NotRelease bool
	// Min and Max bound an Int or Duration setting ("1", "256"; "1s", "24h"),
	// both inclusive. Every numeric setting declares both: a value outside
	// is a usage error naming the range, never silently defaulted, and the
	// generated docs and --help show it.
	Min, Max string
	// OneLine refuses a value with a line break (a startup command is one
	// shell line on App Service; a second line would be run, or dropped,
	// without the user seeing it).
	OneLine bool
	// SecretParts, when set, returns the parts of a value that are secret
	// (nil when it holds none): a blob endpoint is a plain URL until it
	// carries a SAS. Such a value is masked like a secret and refused in
	// djdeploy.yaml.
	SecretParts func(raw string) []string
	// MaskParts, when set, returns parts of a value to mask in output that
	// are fine in djdeploy.yaml (build-env values such as SECRET_KEY are
	// what the app will run with: a log must not show them).
	MaskParts func(raw string) []string
}

// SecretsIn returns what of raw must be masked: all of it for a secret
// setting, else the parts SecretParts finds.
func (s Setting) SecretsIn(raw string) []string {
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return nil
	case s.Secret:
		return []string{raw}
	case s.SecretParts != nil:
		return s.SecretParts(raw)
	case s.MaskParts != nil:
		return s.MaskParts(raw)
	}
	return nil
}

// Range describes Min..Max for messages and docs ("1 to 256", "1s to 24h"),
// or "" when the setting has none.
func (s Setting) Range() string {
	if s.Min == "" && s.Max == "" {
		return ""
	}
	return s.Min + " to " + s.Max
}

// EnvName returns the environment variable that carries the setting.
func (s Setting) EnvName() string {
	if s.Env != "" {
		return s.Env
	}
	return "DJDEPLOY_" + strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_"))
}

// CamelName is the Azure Pipelines parameter name (resource-group -> resourceGroup).
func (s Setting) CamelName() string {
	parts := strings.Split(s.Name, "-")
	for i := 1; i < len(parts); i++ {
		if parts[i] == "" {
			continue
		}
		r := []rune(parts[i])
		r[0] = unicode.ToUpper(r[0])
		parts[i] = string(r)
	}
	return strings.Join(parts, "")
}

var (
	mu       sync.Mutex
	registry = map[string]Setting{}
)

// Register adds declarations. Each capability declares its settings in its
// own file of this package (decl_*.go) through init, so they never conflict.
func Register(ss ...Setting) {
	mu.Lock()
	defer mu.Unlock()
	for _, s := range ss {
		if _, dup := registry[s.Name]; dup {
			panic("settings: duplicate declaration of " + s.Name)
		}
		if s.Name != strings.ToLower(s.Name) || strings.ContainsAny(s.Name, " _") {
			panic("settings: name must be kebab-case: " + s.Name)
		}
		if (s.Kind == Int || s.Kind == Duration) && (s.Min == "" || s.Max == "") {
			panic("settings: numeric setting without a declared range (Min, Max): " + s.Name)
		}
		if s.Min != "" {
			lo, err1 := parseKind(s.Kind, s.Min)
			hi, err2 := parseKind(s.Kind, s.Max)
			if err1 != nil || err2 != nil || lo > hi {
				panic("settings: bad range of " + s.Name)
			}
		}
		registry[s.Name] = s
	}
}

// All returns every declared setting, ordered by group then name.
func All() []Setting {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Setting, 0, len(registry))
	for _, s := range registry {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		gi, gj := groupRank(out[i].Group), groupRank(out[j].Group)
		if gi != gj {
			return gi < gj
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Lookup returns the declaration for a name.
func Lookup(name string) (Setting, bool) {
	mu.Lock()
	defer mu.Unlock()
	s, ok := registry[name]
	return s, ok
}

// ForCommand returns the settings a command takes as flags. cmd is the
// command path below djdeploy ("deploy", "static sync"); a declaration for
// "static" covers each of its sub-commands.
func ForCommand(cmd string) []Setting {
	var out []Setting
	for _, s := range All() {
		if s.CIOnly {
			continue
		}
		if cmd == "release" {
			if !s.NotRelease {
				out = append(out, s)
			}
			continue
		}
		if cmd == "rollback" {
			// A rollback is a release of a kept package: no build, no
			// pre-swap command (the old code would migrate nothing back),
			// no canary or multi-region rollout, no artifact folder.
			if !s.NotRelease && (s.Group != "Build" || s.Name == "project") && !notRollback[s.Name] && s.Group != "Progressive delivery" && s.Group != "Doctor" {
				out = append(out, s)
			}
			continue
		}
		if cmd == "status" || cmd == "releases" {
			// They read: the app's slots (ARM, Kudu) and the state
			// container (history, ledger).
			if (s.Group == "Azure" || s.Group == "Static files") && (slices.Contains(s.Commands, "swap") || slices.Contains(s.Commands, "static")) ||
				s.Name == "resource-group" || s.Name == "app" || s.Name == "project" {
				out = append(out, s)
			}
			continue
		}
		for _, c := range s.Commands {
			if c == cmd || strings.HasPrefix(cmd, c+" ") {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// notRollback are release settings a rollback has no use for.
var notRollback = map[string]bool{"artifact": true, "pre-swap-command": true, "pre-swap-where": true}

var groupOrder = []string{"Azure", "App Service", "Build", "Static files", "CDN", "Release", "Progressive delivery", "Doctor", "CI"}

func groupRank(g string) int {
	for i, o := range groupOrder {
		if o == g {
			return i
		}
	}
	return len(groupOrder)
}

// Nearest returns the declared name closest to an unknown one, for "did you
// mean" hints, or "" when nothing is close.
func Nearest(unknown string) string {
	var names []string
	for _, s := range All() {
		names = append(names, s.Name)
	}
	return NearestOf(unknown, names)
}

// NearestOf returns the candidate closest to unknown by edit distance, or
// "" when none is close: the same rule for YAML keys and command-line flags.
func NearestOf(unknown string, candidates []string) string {
	best, bestD := "", 1<<30
	u := strings.ToLower(strings.ReplaceAll(unknown, "_", "-"))
	for _, c := range candidates {
		d := levenshtein(u, c)
		if d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= max(2, len(u)/3) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (s Setting) String() string { return fmt.Sprintf("%s (%s)", s.Name, s.EnvName()) }
