package ci

import (
	"os"
	"path/filepath"
	"strings"
)

// RepoPath turns a file named relative to the Django project (as Django's
// checks and the build's manifest name it: mysite/settings.py) into the path
// the CI resolves annotations against: relative to the repository root
// (GITHUB_WORKSPACE, BUILD_SOURCESDIRECTORY), so a project in a subfolder
// gets app1/mysite/settings.py and the annotation lands on the right file.
// project is the project setting (relative to the working directory, or
// absolute); root "" means the working directory. A path outside root is
// returned as project/file, cleaned.
func RepoPath(file, project, root string) string {
	if file == "" {
		return ""
	}
	if project == "" {
		project = "."
	}
	p := file
	if !filepath.IsAbs(p) {
		p = filepath.Join(project, file)
	}
	wd, err := os.Getwd()
	if err == nil && !filepath.IsAbs(p) {
		p = filepath.Join(wd, p)
	}
	if root == "" {
		root = wd
	}
	if root != "" && filepath.IsAbs(p) {
		if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return filepath.ToSlash(rel)
		}
	}
	if filepath.IsAbs(file) {
		return filepath.ToSlash(file)
	}
	return filepath.ToSlash(filepath.Join(project, file))
}
