package doccheck

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/meshdemo/meshdemo/deploy/matrix"
)

// scenarioTableHeader opens the README's scenario table: one row per preset and scenario of the
// declaration, in its order, the name in backticks and the purpose word for word.
const scenarioTableHeader = "| scenario | what it shows | details |"

// flavourTableHeader opens the README's flavour table: one row per flavour, in the declaration's
// order, the last column starting with the flavour's name in backticks.
const flavourTableHeader = "| flavour | data plane | routes | `FLAVOUR=` / skaffold profile |"

// CheckDeclared compares the README's scenario and flavour tables with the declaration in
// deploy/matrix (readme is the file's content, name its path for the problems).
func CheckDeclared(name string, readme []byte) []Problem {
	var probs []Problem
	rows, line := table(readme, scenarioTableHeader)
	if rows == nil {
		return []Problem{{name, 1, fmt.Sprintf("no table headed %q", scenarioTableHeader)}}
	}
	want := append(matrix.Presets(), matrix.Scenarios()...)
	for i, s := range want {
		if i >= len(rows) {
			probs = append(probs, Problem{name, line, fmt.Sprintf("the scenario table has no row for %q", s.Name)})
			continue
		}
		r := rows[i]
		if len(r.cells) < 2 || r.cells[0] != "`"+s.Name+"`" {
			probs = append(probs, Problem{name, r.line, fmt.Sprintf("row %d: want scenario `%s` (deploy/matrix order)", i+1, s.Name)})
			continue
		}
		if r.cells[1] != s.Purpose {
			probs = append(probs, Problem{name, r.line, fmt.Sprintf("`%s`: the table says %q, deploy/matrix says %q", s.Name, r.cells[1], s.Purpose)})
		}
	}
	for _, r := range rows[min(len(rows), len(want)):] {
		probs = append(probs, Problem{name, r.line, fmt.Sprintf("the scenario table has a row deploy/matrix does not declare: %s", r.cells[0])})
	}

	rows, line = table(readme, flavourTableHeader)
	if rows == nil {
		return append(probs, Problem{name, 1, fmt.Sprintf("no table headed %q", flavourTableHeader)})
	}
	flavours := matrix.Flavours()
	if len(rows) != len(flavours) {
		probs = append(probs, Problem{name, line, fmt.Sprintf("the flavour table has %d rows, deploy/matrix declares %d flavours", len(rows), len(flavours))})
	}
	for i, r := range rows[:min(len(rows), len(flavours))] {
		last := r.cells[len(r.cells)-1]
		if !strings.HasPrefix(last, "`"+flavours[i].String()+"`") {
			probs = append(probs, Problem{name, r.line, fmt.Sprintf("flavour row %d: want `%s` first in its last cell, got %q", i+1, flavours[i], last)})
		}
	}
	return probs
}

type row struct {
	cells []string
	line  int
}

// table returns the body rows of the Markdown table whose header line is header, and the
// header's line number; nil when there is no such table.
func table(src []byte, header string) ([]row, int) {
	lines := bytes.Split(src, []byte("\n"))
	for i, l := range lines {
		if string(bytes.TrimSpace(l)) != header {
			continue
		}
		var rows []row
		for j := i + 2; j < len(lines); j++ { // skip the |---| line
			t := strings.TrimSpace(string(lines[j]))
			if !strings.HasPrefix(t, "|") {
				break
			}
			var cells []string
			for _, c := range strings.Split(strings.Trim(t, "|"), " | ") {
				cells = append(cells, strings.TrimSpace(c))
			}
			rows = append(rows, row{cells, j + 1})
		}
		return rows, i + 1
	}
	return nil, 0
}
