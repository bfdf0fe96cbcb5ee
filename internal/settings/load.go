package settings

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/djdeploy/djdeploy/internal/problem"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// FileName is the project's settings file.
const FileName = "djdeploy.yaml"

// Source says where a value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
)

// Value is one resolved setting.
type Value struct {
	Raw    string
	Source Source
}

// Values are resolved settings. Getters never fail: Load has already parsed
// and validated every value against its declared kind.
type Values struct {
	m map[string]Value
}

// Load resolves every declared setting: flags that were set, then the
// environment, then the settings file, then defaults. file may be "" (no
// file). A missing file named explicitly is an error; the default file is
// optional.
func Load(flags *pflag.FlagSet, getenv func(string) string, file string, explicitFile bool) (*Values, error) {
	return LoadWithStdin(flags, getenv, os.Stdin, file, explicitFile)
}

// LoadWithStdin is Load with the reader a secret's --NAME-file - reads.
func LoadWithStdin(flags *pflag.FlagSet, getenv func(string) string, stdin io.Reader, file string, explicitFile bool) (*Values, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	fileVals := map[string]string{}
	if file != "" {
		var err error
		fileVals, err = readFile(file)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && !explicitFile {
				fileVals = map[string]string{}
			} else {
				return nil, err
			}
		}
	}
	v := &Values{m: map[string]Value{}}
	for _, s := range All() {
		val := Value{Raw: s.Default, Source: FromDefault}
		if raw, ok := fileVals[s.Name]; ok {
			val = Value{Raw: raw, Source: FromFile}
		}
		if raw := getenv(s.EnvName()); raw != "" {
			val = Value{Raw: raw, Source: FromEnv}
		}
		if flags != nil {
			if f := flags.Lookup(s.Name); f != nil && f.Changed {
				if s.Secret {
					// Like gh's --with-token: a command line is readable by
					// every local user (ps, /proc) and lands in shell history.
					return nil, problem.Usagef(fmt.Sprintf("set the environment variable %s, or use --%s-file FILE (- reads stdin)", s.EnvName(), s.Name),
						"--%s is a secret and is not taken on the command line, where other users and shell history see it", s.Name)
				}
				if s.SecretParts != nil && len(s.SecretParts(flagRaw(f))) > 0 {
					return nil, problem.Usagef(fmt.Sprintf("set the environment variable %s instead (or sign in with Entra ID and give storage-account)", s.EnvName()),
						"--%s carries a secret (a SAS token) and is not taken on the command line, where other users and shell history see it", s.Name)
				}
				val = Value{Raw: flagRaw(f), Source: FromFlag}
			}
			if f := flags.Lookup(s.Name + "-file"); s.Secret && f != nil && f.Changed {
				raw, err := readSecretFile(f.Value.String(), stdin)
				if err != nil {
					return nil, problem.Usagef(fmt.Sprintf("give a readable file, or set %s instead", s.EnvName()), "--%s-file: %v", s.Name, err)
				}
				val = Value{Raw: raw, Source: FromFlag}
			}
		}
		if err := check(s, val); err != nil {
			return nil, err
		}
		v.m[s.Name] = val
	}
	return v, nil
}

// readSecretFile reads a secret from a file or, for "-", stdin; one
// trailing line break (echo, editors) is not part of it.
func readSecretFile(path string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if path == "-" {
		if stdin == nil {
			return "", errors.New("no standard input")
		}
		b, err = io.ReadAll(io.LimitReader(stdin, 1<<20))
	} else {
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if strings.TrimSpace(s) == "" {
		return "", fmt.Errorf("%s is empty", map[bool]string{true: "standard input", false: path}[path == "-"])
	}
	return s, nil
}

func flagRaw(f *pflag.Flag) string {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return strings.Join(sv.GetSlice(), ",")
	}
	return f.Value.String()
}

func check(s Setting, val Value) error {
	raw := strings.TrimSpace(val.Raw)
	if raw == "" {
		return nil
	}
	where := describe(s, val.Source)
	shown := echo(raw)
	if len(raw) > MaxValueBytes {
		// Every later message that quotes the value (an app name, a
		// status list) would repeat it whole.
		return problem.Usagef(fmt.Sprintf("give a value of at most %d bytes", MaxValueBytes),
			"%s: the value is %d bytes long, starting %s...", where, len(raw), strconv.Quote(string([]rune(raw[:echoLimit*4])[:echoLimit])))
	}
	switch s.Kind {
	case Bool:
		if _, err := strconv.ParseBool(raw); err != nil {
			return problem.Usagef("use true or false", "%s: %s is not a boolean", where, shown)
		}
	case Int:
		if _, err := strconv.Atoi(raw); err != nil {
			return problem.Usagef("use a whole number from "+s.Range(), "%s: %s is not a whole number", where, shown)
		}
	case Duration:
		if _, err := strconv.ParseFloat(raw, 64); err == nil && raw != "0" {
			// A bare number once meant seconds, silently; minutes were a
			// common guess. The unit is part of the value now.
			return problem.Usagef(fmt.Sprintf("add a unit: %ss for seconds, %sm for minutes", raw, raw),
				"%s: %s has no unit", where, shown)
		}
		if _, err := parseDuration(raw); err != nil {
			return problem.Usagef("use a duration such as 90s, 10m or 1h30m, from "+s.Range(), "%s: %s is not a duration", where, shown)
		}
	}
	if s.Min != "" {
		n, _ := parseKind(s.Kind, raw)
		lo, _ := parseKind(s.Kind, s.Min)
		hi, _ := parseKind(s.Kind, s.Max)
		if n < lo || n > hi {
			return problem.Usagef("give a value from "+s.Range(), "%s: %s is out of range (%s)", where, shown, s.Range())
		}
	}
	if s.OneLine && strings.ContainsAny(raw, "\r\n") {
		return problem.Usagef("give it on one line (join commands with && or put them in a script in the project)",
			"%s: the value has a line break", where)
	}
	if len(s.Enum) > 0 {
		ok := false
		for _, e := range s.Enum {
			if strings.EqualFold(e, raw) {
				ok = true
			}
		}
		if !ok {
			return problem.Usagef("use one of: "+strings.Join(s.Enum, ", "), "%s: %s is not an accepted value", where, shown)
		}
	}
	return nil
}

func describe(s Setting, src Source) string {
	switch src {
	case FromFlag:
		return "flag --" + s.Name
	case FromEnv:
		return "environment variable " + s.EnvName()
	case FromFile:
		return FileName + " key " + s.Name
	}
	return "default of " + s.Name
}

// emptyDoc reports a document with nothing in it (a trailing ---).
func emptyDoc(n *yaml.Node) bool {
	return len(n.Content) == 0 || len(n.Content) == 1 && n.Content[0].ShortTag() == "!!null" && n.Content[0].Value == ""
}

// MaxValueBytes is the longest value any setting takes: far above any
// real one (a long build-env list, header rules), far below a file pasted
// into a variable by mistake.
const MaxValueBytes = 64 << 10

// echoLimit is how much of a bad value a message repeats: enough to
// recognise it, never a whole file pasted into a variable.
const echoLimit = 64

// echo quotes a value for an error message, cut to echoLimit characters
// with the full length stated.
func echo(raw string) string {
	r := []rune(raw)
	if len(r) <= echoLimit {
		return strconv.Quote(raw)
	}
	return fmt.Sprintf("%s... (%d bytes)", strconv.Quote(string(r[:echoLimit])), len(raw))
}

// parseKind reads an Int or Duration value as one comparable number
// (nanoseconds for durations).
func parseKind(k Kind, raw string) (int64, error) {
	if k == Duration {
		d, err := parseDuration(raw)
		return int64(d), err
	}
	n, err := strconv.Atoi(raw)
	return int64(n), err
}

// parseDuration accepts Go durations (90s, 10m, 1h30m); check has already
// refused a bare number other than 0.
func parseDuration(raw string) (time.Duration, error) {
	return time.ParseDuration(raw)
}

func readFile(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &problem.Error{Usage: true, What: fmt.Sprintf("settings file %s does not exist", path),
				Fix: "check the --config path, or remove it to use flags and environment only", Err: fs.ErrNotExist}
		}
		return nil, problem.Usagef("check the file's permissions", "cannot read settings file %s: %v", path, err)
	}
	return ParseFile(path, data)
}

// ParseFile parses djdeploy.yaml content: a flat mapping of setting names to
// scalars or lists of scalars.
func ParseFile(path string, data []byte) (map[string]string, error) {
	out := map[string]string{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		return nil, problem.Usagef("fix the YAML syntax; the file is a flat mapping such as `app: my-app`", "%s is not valid YAML: %v", path, err)
	}
	// A second document (after ---) would be ignored silently by a plain
	// Unmarshal: its settings would look set and do nothing.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) && (err != nil || !emptyDoc(&more)) {
		return nil, problem.Usagef("keep one mapping of settings: remove the --- separator and merge or drop the other document",
			"%s holds more than one YAML document (separated by ---)", path)
	}
	if len(doc.Content) == 0 {
		return out, nil
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, problem.Usagef("write settings as `name: value` lines", "%s: the top level must be a mapping of setting names to values", path)
	}
	seen := map[string]int{} // name -> line, so a key given twice is an error, not "last wins"
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		// An alias node's Value is the anchor's name, not the key it
		// stands for, and a tagged key (!!binary) decodes to other text:
		// only plain string keys name a setting.
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return nil, problem.Usagef("write each setting as a plain `name: value` line", "%s line %d: a setting name must be a plain word, not an alias, tag, list or mapping", path, k.Line)
		}
		name := k.Value
		s, ok := Lookup(name)
		if !ok {
			fix := "remove it, or see `djdeploy help settings` for every setting"
			if n := Nearest(name); n != "" {
				fix = fmt.Sprintf("did you mean %q?", n)
			}
			return nil, problem.Usagef(fix, "%s line %d: unknown setting %q", path, k.Line, name)
		}
		if s.Secret {
			return nil, problem.Usagef("pass it through the environment variable "+s.EnvName()+" or your CI's secret store",
				"%s line %d: %s is a secret and must not be stored in a file", path, k.Line, name)
		}
		if v.Kind == yaml.ScalarNode && s.SecretParts != nil && len(s.SecretParts(v.Value)) > 0 {
			return nil, problem.Usagef("pass it through the environment variable "+s.EnvName()+" or your CI's secret store (or use storage-account with Entra ID sign-in)",
				"%s line %d: %s carries a secret (a SAS token) and must not be stored in a file", path, k.Line, name)
		}
		if first, dup := seen[name]; dup {
			return nil, problem.Usagef("keep one of the two lines", "%s line %d: %s is set twice (first on line %d)", path, k.Line, name, first)
		}
		seen[name] = k.Line
		// An explicit tag changes what the text means (!!binary decodes
		// base64); the raw text would not be what YAML says.
		if v.Style&yaml.TaggedStyle != 0 && v.ShortTag() != "!!str" {
			return nil, problem.Usagef("remove the tag and give the plain value", "%s line %d: %s: tagged values (%s) are not accepted", path, v.Line, name, v.Tag)
		}
		switch v.Kind {
		case yaml.ScalarNode:
			// `key: null`, `key: ~` and `key:` mean "no value" in YAML; as
			// text they would become the word "null" or an empty value
			// that hides the default.
			if v.ShortTag() == "!!null" {
				return nil, problem.Usagef(`remove the line to use the default, or quote the value ("null") if you mean that text`,
					"%s line %d: %s has no value (null)", path, v.Line, name)
			}
			out[name] = v.Value
		case yaml.SequenceNode:
			if s.Kind != List {
				return nil, problem.Usagef("give a single value", "%s line %d: %s takes one %s, not a list", path, v.Line, name, s.Kind)
			}
			var items []string
			for _, it := range v.Content {
				if it.Kind != yaml.ScalarNode || it.Style&yaml.TaggedStyle != 0 && it.ShortTag() != "!!str" {
					return nil, problem.Usagef("list plain values", "%s line %d: %s: list items must be plain values", path, it.Line, name)
				}
				items = append(items, it.Value)
			}
			out[name] = strings.Join(items, ",")
		default:
			return nil, problem.Usagef("give a plain value", "%s line %d: %s must be a plain value", path, v.Line, name)
		}
	}
	return out, nil
}

// FindFile returns the settings file for a project directory.
func FindFile(projectDir string) string {
	return filepath.Join(projectDir, FileName)
}

// Get returns a setting's resolved value.
func (v *Values) Get(name string) Value {
	if _, ok := Lookup(name); !ok {
		panic("settings: undeclared setting " + name)
	}
	return v.m[name]
}

// String returns the trimmed raw value.
func (v *Values) String(name string) string { return strings.TrimSpace(v.Get(name).Raw) }

// Bool returns a boolean setting (false when unset).
func (v *Values) Bool(name string) bool {
	b, _ := strconv.ParseBool(v.String(name))
	return b
}

// Int returns an integer setting (0 when unset).
func (v *Values) Int(name string) int {
	n, _ := strconv.Atoi(v.String(name))
	return n
}

// Duration returns a duration setting (0 when unset).
func (v *Values) Duration(name string) time.Duration {
	d, _ := parseDuration(v.String(name))
	return d
}

// List returns a list setting split on commas and newlines, blanks dropped.
func (v *Values) List(name string) []string {
	raw := v.String(name)
	var out []string
	for _, f := range strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || r == '\n' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Set overrides a value (tests, and front ends that map their own inputs).
func (v *Values) Set(name, raw string, src Source) error {
	s, ok := Lookup(name)
	if !ok {
		return fmt.Errorf("undeclared setting %s", name)
	}
	val := Value{Raw: raw, Source: src}
	if err := check(s, val); err != nil {
		return err
	}
	v.m[name] = val
	return nil
}

// Require returns a usage error naming every missing setting among names,
// with where each can be given.
func (v *Values) Require(names ...string) error {
	var missing []string
	for _, n := range names {
		if v.String(n) == "" {
			s, _ := Lookup(n)
			missing = append(missing, fmt.Sprintf("--%s (or %s)", n, s.EnvName()))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	return problem.Usagef("set them as flags, environment variables, or keys in "+FileName,
		"missing required setting%s: %s", plural(len(missing)), strings.Join(missing, ", "))
}

// Secrets returns the non-empty values of every secret setting, so front
// ends can mask them before printing anything.
func (v *Values) Secrets() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.SecretsIn(v.String(s.Name))...)
	}
	return out
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// BindFlags registers cobra/pflag flags for settings. Flags carry no
// default of their own (the help text states it) so that an unset flag never
// hides the environment or the file.
func BindFlags(fs *pflag.FlagSet, ss []Setting) {
	for _, s := range ss {
		if fs.Lookup(s.Name) != nil {
			continue
		}
		usage := s.Description
		if r := s.Range(); r != "" {
			usage += " (" + r + ")"
		}
		if s.Default != "" {
			usage += fmt.Sprintf(" (default %s)", s.Default)
		}
		usage += " [$" + s.EnvName() + "]"
		if s.Secret {
			// The value itself is refused on the command line (Load says
			// why); the flag stays, hidden, so the refusal can name the
			// environment variable instead of "unknown flag".
			fs.VarP(&rawValue{kind: s.Kind}, s.Name, "", usage)
			_ = fs.MarkHidden(s.Name)
			fs.String(s.Name+"-file", "", "file holding "+s.Name+" ('-' reads stdin); never the value itself on the command line [or $"+s.EnvName()+"]")
			continue
		}
		switch s.Kind {
		case Bool:
			fs.BoolP(s.Name, s.Short, false, usage)
		case List:
			fs.StringSliceP(s.Name, s.Short, nil, usage)
		default:
			fs.VarP(&rawValue{kind: s.Kind}, s.Name, s.Short, usage)
		}
	}
}

// rawValue keeps a flag's text as given (Load parses and checks it against
// the declaration, with one message for flags, environment and file alike),
// while --help shows the declared type: int, duration, string.
type rawValue struct {
	raw  string
	kind Kind
}

func (v *rawValue) String() string     { return v.raw }
func (v *rawValue) Set(s string) error { v.raw = s; return nil }
func (v *rawValue) Type() string       { return v.kind.String() }
