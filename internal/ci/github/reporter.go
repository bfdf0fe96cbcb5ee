package github

import (
	"strings"

	"github.com/djdeploy/djdeploy/internal/ci"
	"github.com/sethvargo/go-githubactions"
)

// NewReporter is the progress.Reporter of a GitHub Actions step, reporting
// through gha: lines in the log, warnings as annotations, one ::group:: per
// step, and masks.
func NewReporter(gha *githubactions.Action) *ci.Reporter {
	return ci.NewReporter(actionLog{gha})
}

// actionLog is ci.Log in workflow commands.
type actionLog struct{ gha *githubactions.Action }

func (l actionLog) Mask(v string)      { l.gha.AddMask(v) }
func (l actionLog) Info(line string)   { l.gha.Infof("%s", neutralize(line)) }
func (l actionLog) Warn(msg string)    { l.gha.Warningf("%s", msg) }
func (l actionLog) Group(title string) { l.gha.Group(neutralize(title)) }
func (l actionLog) EndGroup()          { l.gha.EndGroup() }

// neutralize keeps text from the user's project (file names, command output)
// from being read as a workflow command: the runner acts on lines that start
// with "::".
func neutralize(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, " \t"), "::") {
			lines[i] = strings.Replace(l, "::", ":\u200b:", 1)
		}
	}
	return strings.Join(lines, "\n")
}
