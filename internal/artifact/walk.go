package artifact

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/djdeploy/djdeploy/internal/problem"
	gitignore "github.com/sabhiram/go-gitignore"
)

// IgnoreFile names extra excludes in the project, in gitignore syntax.
const IgnoreFile = ".djdeployignore"

// DefaultExcludes never belong in an App Service zip: version control,
// bytecode, virtualenvs (Oryx makes its own antenv; a runner's venv breaks on
// App Service), node_modules, secrets in .env files, and the folders
// djdeploy itself writes. Folders holding a pyvenv.cfg are excluded too,
// whatever their name.
var DefaultExcludes = []string{
	".git/", ".hg/", ".svn/",
	"__pycache__/", "*.pyc", "*.pyo",
	".venv/", "venv/", "antenv/",
	"node_modules/",
	".env", ".env.*",
	".python_packages/",
	".djdeploy/",
}

// Excluder decides which project paths stay out of the zip.
type Excluder struct {
	defaults *gitignore.GitIgnore
	user     *gitignore.GitIgnore
	// dirs are resolved absolute folders left out whole (STATIC_ROOT, --out).
	dirs map[string]string
}

// NewExcluder compiles the default excludes plus the project's
// .djdeployignore, if any.
func NewExcluder(projectDir string) (*Excluder, error) {
	e := &Excluder{defaults: gitignore.CompileIgnoreLines(DefaultExcludes...), dirs: map[string]string{}}
	file := filepath.Join(projectDir, IgnoreFile)
	if _, err := os.Stat(file); err == nil {
		gi, err := compileIgnoreFile(file)
		if err != nil {
			return nil, problem.Usagef("fix or remove "+IgnoreFile, "reading %s: %v", file, err)
		}
		e.user = gi
	}
	return e, nil
}

// compileIgnoreFile reads a .djdeployignore. go-gitignore turns each line
// into a regular expression escaping only '.', so characters that
// gitignore matches literally ('+', '(', ')', '{', '}', '|', '^', '$') made
// lines such as "c++/" or "settings(local).py" exclude nothing, silently;
// they are escaped here, and gitignore's "[!...]" becomes "[^...]".
func compileIgnoreFile(file string) (*gitignore.GitIgnore, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(data) {
		// A regular expression cannot hold such a line; go-gitignore would
		// drop it and exclude nothing.
		return nil, errors.New("it is not UTF-8 text; save it as UTF-8")
	}
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		lines[i] = literalLine(l)
	}
	return gitignore.CompileIgnoreLines(lines...), nil
}

func literalLine(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line): // escaped by the user: kept as written
			b.WriteString(line[i : i+2])
			i++
			continue
		case c == '[' && i+1 < len(line) && (line[i+1] == '!' || line[i+1] == '^'):
			b.WriteString("[^")
			i++
			continue
		case strings.IndexByte("+(){}|^$", c) >= 0:
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// newVendorExcluder drops only bytecode from vendored packages.
func newVendorExcluder() *Excluder {
	return &Excluder{defaults: gitignore.CompileIgnoreLines("__pycache__/", "*.pyc", "*.pyo"), dirs: map[string]string{}}
}

// ExcludeDir leaves a whole folder out (absolute, resolved), with a reason.
func (e *Excluder) ExcludeDir(abs, reason string) { e.dirs[abs] = reason }

// Excluded reports whether the slash-separated project-relative path is
// left out. Folder patterns (name/) only match folders.
func (e *Excluder) Excluded(rel string, isDir bool) bool {
	// go-gitignore's patterns use '.', which does not match a line break:
	// a folder named "a\nb" hid the .git or .env inside it from every
	// pattern. NUL cannot occur in a name or a pattern, and '.' matches it.
	q := strings.ReplaceAll(rel, "\n", "\x00")
	if isDir {
		q += "/"
	}
	if e.defaults.MatchesPath(q) {
		return true
	}
	return e.user != nil && e.user.MatchesPath(q)
}

// fileEntry is one zip entry: a folder (Name ends in "/") or a file read
// from Src.
type fileEntry struct {
	Name string
	Src  string
	Size int64
	Mode fs.FileMode // 0644 or 0755 (files), fs.ModeDir|0755 (folders)
}

// walker lists a tree for the zip, refusing what cannot ship safely.
type walker struct {
	root   string // resolved absolute root
	prefix string // zip name prefix ("" or "x/y/")
	ex     *Excluder
	out    []fileEntry
	warn   func(format string, args ...any)
}

// collect lists root's files and folders for the zip under prefix. Symlinks
// that resolve inside root are stored as what they point to; links that
// escape root, dangle or loop are errors.
func collect(root, prefix string, ex *Excluder, warn func(string, ...any)) ([]fileEntry, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", root, err)
	}
	if warn == nil {
		warn = func(string, ...any) {}
	}
	w := &walker{root: real, prefix: prefix, ex: ex, warn: warn}
	if err := w.dir(real, "", []string{real}); err != nil {
		return nil, err
	}
	return w.out, nil
}

func (w *walker) dir(abs, rel string, ancestors []string) error {
	ents, err := os.ReadDir(abs)
	if err != nil {
		return fmt.Errorf("reading folder %s: %w", abs, err)
	}
	for _, d := range ents {
		childRel := path.Join(rel, d.Name())
		childAbs := filepath.Join(abs, d.Name())
		typ := d.Type()
		// A name that is not UTF-8 cannot become a zip entry App Service
		// unpacks the same way, nor a blob name or URL: say so here, not
		// later as a static file that "does not exist".
		if !utf8.ValidString(d.Name()) && !(w.ex != nil && (w.ex.Excluded(childRel, true) || w.ex.Excluded(childRel, false))) {
			return problem.Usagef("rename it using UTF-8 characters, or list it in "+IgnoreFile,
				"file name %q in the project is not valid UTF-8", strings.ToValidUTF8(childRel, "\ufffd"))
		}
		if why := badZipName(d.Name()); why != "" && !(w.ex != nil && (w.ex.Excluded(childRel, true) || w.ex.Excluded(childRel, false))) {
			return problem.Usagef("rename it, or list it in "+IgnoreFile, "file %q in the project: its name %s", childRel, why)
		}
		if typ&fs.ModeSymlink != 0 {
			// Excludes apply to the link's own name first, so a link in an
			// excluded place (.venv/bin/python) is never even resolved.
			if w.ex != nil && (w.ex.Excluded(childRel, true) || w.ex.Excluded(childRel, false)) {
				continue
			}
			target, err := w.resolveLink(childAbs, childRel)
			if err != nil {
				return err
			}
			st, err := os.Stat(target)
			if err != nil {
				return fmt.Errorf("reading %s: %w", childAbs, err)
			}
			// A link to an excluded file is excluded too: config.txt -> .env
			// shipped the .env that the defaults keep out.
			if w.ex != nil && w.prefix == "" {
				if trel, ok := relInside(w.root, target); ok && w.ex.excludedPath(trel, st.IsDir(), false) {
					w.warn("leaving out %s: it links to %s, which is excluded", childRel, trel)
					continue
				}
			}
			if st.IsDir() {
				for _, a := range ancestors {
					if a == target {
						return problem.Usagef("remove the link, or list it in "+IgnoreFile,
							"symlink %s points to its own parent folder %s (a loop); djdeploy does not follow it", childRel, w.relOf(target))
					}
				}
				if err := w.addDir(target, childRel, ancestors); err != nil {
					return err
				}
				continue
			}
			if !st.Mode().IsRegular() {
				w.warn("skipping %s: not a regular file", childRel)
				continue
			}
			w.addFile(target, childRel, st)
			continue
		}
		switch {
		case d.IsDir():
			if err := w.addDir(childAbs, childRel, ancestors); err != nil {
				return err
			}
		case typ.IsRegular():
			if w.ex != nil && w.ex.Excluded(childRel, false) {
				continue
			}
			st, err := d.Info()
			if err != nil {
				return fmt.Errorf("reading %s: %w", childAbs, err)
			}
			w.addFile(childAbs, childRel, st)
		default:
			w.warn("skipping %s: not a regular file (socket, device or pipe)", childRel)
		}
	}
	return nil
}

func (w *walker) addDir(abs, rel string, ancestors []string) error {
	if w.ex != nil {
		if w.ex.Excluded(rel, true) {
			return nil
		}
		if _, ok := w.ex.dirs[abs]; ok {
			return nil
		}
		if fileExists(filepath.Join(abs, "pyvenv.cfg")) {
			w.warn("leaving out %s: it is a virtualenv (App Service makes its own)", rel)
			return nil
		}
	}
	w.out = append(w.out, fileEntry{Name: w.prefix + rel + "/", Mode: fs.ModeDir | 0o755})
	return w.dir(abs, rel, append(ancestors[:len(ancestors):len(ancestors)], abs))
}

func (w *walker) addFile(abs, rel string, st fs.FileInfo) {
	mode := fs.FileMode(0o644)
	if st.Mode().Perm()&0o111 != 0 {
		mode = 0o755
	}
	w.out = append(w.out, fileEntry{Name: w.prefix + rel, Src: abs, Size: st.Size(), Mode: mode})
}

// resolveLink returns a symlink's resolved target, refusing links that
// dangle, loop, or leave the tree.
func (w *walker) resolveLink(abs, rel string) (string, error) {
	target, err := filepath.EvalSymlinks(abs)
	if err != nil {
		dest, _ := os.Readlink(abs)
		fix := "remove the link, or list it in " + IgnoreFile
		if errors.Is(err, syscall.ELOOP) || strings.Contains(err.Error(), "too many links") {
			return "", problem.Usagef(fix, "symlink %s -> %s is a loop; djdeploy does not follow it", rel, dest)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return "", problem.Usagef(fix, "symlink %s -> %s points to nothing", rel, dest)
		}
		return "", problem.Usagef(fix, "symlink %s -> %s cannot be resolved: %v", rel, dest, err)
	}
	if !within(w.root, target) {
		dest, _ := os.Readlink(abs)
		return "", problem.Usagef("copy what it points to into the project, or list the link in "+IgnoreFile,
			"symlink %s -> %s points outside the project (to %s); djdeploy never follows such links", rel, dest, target)
	}
	return target, nil
}

func (w *walker) relOf(abs string) string {
	r, err := filepath.Rel(w.root, abs)
	if err != nil || r == "." {
		return "(project root)"
	}
	return filepath.ToSlash(r)
}

// sortEntries orders entries by name, the zip's order, and rejects names
// that two sources both produce.
func sortEntries(ents []fileEntry) error {
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	for i := 1; i < len(ents); i++ {
		if ents[i].Name == ents[i-1].Name {
			return fmt.Errorf("two files would be stored as %s in the zip", ents[i].Name)
		}
	}
	return nil
}
