package emulator

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// pythonVersion is the X.Y a slot's linuxFxVersion names (PYTHON|3.12),
// "" when it names none.
func (s *slot) pythonVersion() string {
	v, _ := s.config["linuxFxVersion"].(string)
	stack, ver, ok := strings.Cut(v, "|")
	if !ok || !strings.EqualFold(stack, "PYTHON") {
		return ""
	}
	return strings.TrimSpace(ver)
}

// runtimePython is the interpreter of App Service's Python runtime version
// (linuxFxVersion PYTHON|X.Y): the emulator's own Python when it is that
// version, else the newest pyenv X.Y.*, else pythonX.Y on PATH. A slot that
// names a version this machine lacks fails its deployment saying so, as a
// runtime App Service does not offer would.
func (e *Emulator) runtimePython(version string) (string, error) {
	if version == "" {
		return e.python, nil
	}
	e.runtimeMu.Lock()
	defer e.runtimeMu.Unlock()
	if p, ok := e.runtimes[version]; ok {
		return p, nil
	}
	cands := []string{e.python}
	home, _ := os.UserHomeDir()
	found, _ := filepath.Glob(filepath.Join(home, ".pyenv", "versions", version+".*", "bin", "python"+version))
	sort.Slice(found, func(i, j int) bool { return patchLevel(found[i]) > patchLevel(found[j]) })
	cands = append(cands, found...)
	if lp, err := exec.LookPath("python" + version); err == nil {
		cands = append(cands, lp)
	}
	for _, c := range cands {
		out, err := exec.Command(c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
		if err == nil && strings.TrimSpace(string(out)) == version {
			if e.runtimes == nil {
				e.runtimes = map[string]string{}
			}
			e.runtimes[version] = c
			return c, nil
		}
	}
	return "", fmt.Errorf("linuxFxVersion PYTHON|%s: the emulator has no Python %s (install it, e.g. pyenv install %s, or pass --python)", version, version, version)
}

// patchLevel is the patch number of a pyenv path such as
// ~/.pyenv/versions/3.12.10/bin/python3.12.
func patchLevel(p string) int {
	v := filepath.Base(filepath.Dir(filepath.Dir(p)))
	n, _ := strconv.Atoi(v[strings.LastIndexByte(v, '.')+1:])
	return n
}
