package artifact

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/djdeploy/djdeploy/internal/problem"
)

// badZipName reports why a project file's name cannot be a zip entry that
// App Service unpacks under the same name, or "". A backslash is a folder
// separator to Windows tools and some unzips ("..\..\evil.py" climbs out
// of the app folder there); a control character is no file name at all to
// the platform.
func badZipName(name string) string {
	if strings.ContainsRune(name, '\\') {
		return `contains a backslash (\), which unzip tools read as a folder separator`
	}
	if i := strings.IndexFunc(name, unicode.IsControl); i >= 0 {
		return fmt.Sprintf("contains the control character %q", []rune(name[i:])[0])
	}
	return ""
}

// excludedPath reports whether rel, or a folder above it, is excluded
// (by .djdeployignore alone when user is set).
func (e *Excluder) excludedPath(rel string, isDir, user bool) bool {
	ex := e.Excluded
	if user {
		ex = e.userExcluded
	}
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if ex(strings.Join(parts[:i], "/"), true) {
			return true
		}
	}
	return ex(rel, isDir)
}

// userExcluded is Excluded by .djdeployignore alone.
func (e *Excluder) userExcluded(rel string, isDir bool) bool {
	q := strings.ReplaceAll(rel, "\n", "\x00")
	if isDir {
		q += "/"
	}
	return e.user != nil && e.user.MatchesPath(q)
}

// checkZipHasApp fails a build whose zip would not run: .djdeployignore
// lines such as "*", "**", "/", "manage.py" or the settings package left
// the app out, and the build said nothing (exit 0).
func checkZipHasApp(ents []fileEntry, proj *Project) error {
	have := map[string]bool{}
	for _, e := range ents {
		have[e.Name] = true
	}
	if have[StampName] {
		return problem.Usagef("rename the file, or add "+StampName+" to "+IgnoreFile,
			"the project has a file %s at its root: djdeploy writes the release id there in the package", StampName)
	}
	mod := strings.ReplaceAll(proj.SettingsModule, ".", "/")
	var missing []string
	if !have["manage.py"] {
		missing = append(missing, "manage.py")
	}
	inProject := fileExists(filepath.Join(proj.Dir, filepath.FromSlash(mod)+".py")) || fileExists(filepath.Join(proj.Dir, filepath.FromSlash(mod), "__init__.py"))
	if inProject && !have[mod+".py"] && !have[mod+"/__init__.py"] {
		missing = append(missing, "the settings module "+proj.SettingsModule+" ("+mod+".py)")
	}
	if len(missing) == 0 {
		return nil
	}
	return problem.Usagef("remove the line of "+IgnoreFile+" that excludes it (a pattern such as *, ** or / excludes everything)",
		"the package would not hold %s: %s excludes it, and App Service could not run the app", strings.Join(missing, " or "), IgnoreFile)
}

// staticSourcesScript lists every file collectstatic reads (the finders'
// sources, with collectstatic's default ignore patterns) into a JSON file.
const staticSourcesScript = `
import json, sys
import django
django.setup()
from django.contrib.staticfiles.finders import get_finders
out = []
for finder in get_finders():
    for path, storage in finder.list(["CVS", ".*", "*~"]):
        try:
            out.append(storage.path(path))
        except NotImplementedError:
            pass
with open(sys.argv[1], "w") as f:
    json.dump(out, f)
`

// checkStaticSources applies the project's rules to what collectstatic
// reads, which the zip's walk never sees: collectstatic follows any link in
// STATICFILES_DIRS or an app's static folder, and knows nothing of
// .djdeployignore. A source in the project that the ignore file excludes,
// or that is a link leading outside the project (whatever the ignore file
// says), fails the build before anything is collected. Sources outside the
// project (installed apps such as the admin) and in default-excluded
// folders (a .venv inside the project) are Django's, not the project's.
func checkStaticSources(ctx context.Context, py *python, proj *Project, work string, ex *Excluder) error {
	file := filepath.Join(work, "static-sources.json")
	if _, err := py.run(ctx, "listing the static files' sources", "-c", staticSourcesScript, file); err != nil {
		return pythonProblem(err, proj, "listing static files")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("reading the static sources: %w", err)
	}
	var sources []string
	if err := json.Unmarshal(data, &sources); err != nil {
		return fmt.Errorf("parsing the static sources: %w", err)
	}
	root, err := filepath.Abs(proj.Dir)
	if err != nil {
		return err
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return err
	}
	for _, src := range sources {
		rel, ok := relInside(root, src)
		if !ok {
			if rel, ok = relInside(realRoot, src); !ok {
				continue
			}
		}
		if defaultExcluded(ex, rel) {
			continue
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return problem.Usagef("remove the broken link", "static file %s cannot be resolved: %v", rel, err)
		}
		if !within(realRoot, real) {
			return problem.Usagef("copy what it points to into the project, or remove the link",
				"static file %s leads outside the project (to %s) through a symlink; collectstatic would upload it, so djdeploy refuses it whatever %s says", rel, real, IgnoreFile)
		}
		if ex.excludedPath(rel, false, true) {
			return problem.Usagef("move it out of the static folders, or drop the "+IgnoreFile+" line that excludes it",
				"static file %s is excluded by %s, but collectstatic would collect and upload it", rel, IgnoreFile)
		}
	}
	return nil
}

func relInside(root, p string) (string, bool) {
	r, err := filepath.Rel(root, p)
	if err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) || filepath.IsAbs(r) {
		return "", false
	}
	return filepath.ToSlash(r), true
}

func defaultExcluded(ex *Excluder, rel string) bool {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		if ex.defaults.MatchesPath(path.Join(parts[:i]...) + "/") {
			return true
		}
	}
	return false
}
