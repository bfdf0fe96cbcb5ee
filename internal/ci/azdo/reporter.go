package azdo

import (
	"fmt"
	"io"
	"strings"
)

// agentLog is ci.Log in an Azure Pipelines script step's logging commands,
// written to w (the step's stdout, which the agent parses): lines in the
// log, warnings as issues, one ##[group] per step, and secrets registered
// with task.setsecret. Run also writes its own commands through line.
type agentLog struct{ w io.Writer }

func (l agentLog) line(s string) { fmt.Fprintln(l.w, s) }

func (l agentLog) Mask(v string)    { l.line(Command("task.setsecret", nil, v)) }
func (l agentLog) Info(line string) { l.line(neutralize(line)) }
func (l agentLog) Warn(msg string) {
	l.line(Command("task.logissue", map[string]string{"type": "warning"}, msg))
}
func (l agentLog) Group(title string) {
	l.line("##[group]" + strings.ReplaceAll(neutralize(title), "\n", " "))
}
func (l agentLog) EndGroup() { l.line("##[endgroup]") }
