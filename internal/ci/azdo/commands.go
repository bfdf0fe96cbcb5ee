package azdo

import (
	"sort"
	"strings"
)

// Escaping of logging commands, as Microsoft's task library does it
// (azure-pipelines-task-lib taskcommand.ts): the agent reverses exactly
// these, so a value survives with its newlines and nothing in it can end
// the command early or start another.
var (
	dataEscaper     = strings.NewReplacer("%", "%AZP25", "\r", "%0D", "\n", "%0A")
	propertyEscaper = strings.NewReplacer("%", "%AZP25", "\r", "%0D", "\n", "%0A", "]", "%5D", ";", "%3B")
)

// EscapeData escapes a logging command's message.
func EscapeData(s string) string { return dataEscaper.Replace(s) }

// EscapeProperty escapes a logging command's property value.
func EscapeProperty(s string) string { return propertyEscaper.Replace(s) }

// Command formats ##vso[area.action k=v;...]data, properties in name order.
func Command(name string, props map[string]string, data string) string {
	var b strings.Builder
	b.WriteString("##vso[")
	b.WriteString(name)
	keys := make([]string, 0, len(props))
	for k := range props {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(EscapeProperty(props[k]))
		b.WriteByte(';')
	}
	b.WriteByte(']')
	b.WriteString(EscapeData(data))
	return b.String()
}

// neutralize keeps text from the user's project from being read as a
// logging command: the agent acts on "##vso[" anywhere in a line and on
// "##[" at its start.
func neutralize(s string) string {
	s = strings.ReplaceAll(s, "##vso[", "##vso\u200b[")
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, " \t"), "##[") {
			lines[i] = strings.Replace(l, "##[", "#\u200b#[", 1)
		}
	}
	return strings.Join(lines, "\n")
}
