package report

import (
	"fmt"
	"html/template"
	"math"
	"strings"
)

// Charts are drawn here as SVG so the HTML report needs nothing from the network.

const (
	chartW, chartH = 760.0, 280.0
	padL, padR     = 60.0, 150.0
	padT, padB     = 20.0, 40.0
)

var palette = []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"}

// series is one line of a line chart.
type series struct {
	Name   string
	Values []float64
}

// lineChart draws one polyline per series over x = 0..n-1 (seconds).
func lineChart(id, xLabel, yLabel string, ss []series) template.HTML {
	var b strings.Builder
	n := 0
	top := 0.0
	for _, s := range ss {
		n = max(n, len(s.Values))
		for _, v := range s.Values {
			top = max(top, v)
		}
	}
	top = niceCeil(top)
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	x := func(i int) float64 {
		if n <= 1 {
			return padL + plotW/2
		}
		return padL + plotW*float64(i)/float64(n-1)
	}
	y := func(v float64) float64 { return padT + plotH*(1-v/top) }
	open(&b, id)
	axes(&b, top, xLabel, yLabel)
	if n > 1 {
		for _, i := range ticks(n) {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="tick">%d</text>`, x(i), chartH-padB+16, i)
		}
	}
	for k, s := range ss {
		color := palette[k%len(palette)]
		pts := make([]string, len(s.Values))
		for i, v := range s.Values {
			pts[i] = fmt.Sprintf("%.1f,%.1f", x(i), y(v))
		}
		fmt.Fprintf(&b, `<polyline data-series="%s" fill="none" stroke="%s" stroke-width="2" points="%s"/>`,
			template.HTMLEscapeString(s.Name), color, strings.Join(pts, " "))
		legend(&b, k, s.Name, color)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped parts above
}

// barChart draws one bar per label.
func barChart(id, xLabel, yLabel string, labels []string, values []float64) template.HTML {
	var b strings.Builder
	top := 0.0
	for _, v := range values {
		top = max(top, v)
	}
	top = niceCeil(top)
	plotW, plotH := chartW-padL-padR, chartH-padT-padB
	open(&b, id)
	axes(&b, top, xLabel, yLabel)
	if len(values) > 0 {
		w := plotW / float64(len(values))
		every := max(1, len(values)/8)
		for i, v := range values {
			h := plotH * v / top
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" data-label="%s" data-value="%g"><title>%s: %g</title></rect>`,
				padL+w*float64(i)+1, padT+plotH-h, max(w-2, 1), h, palette[0],
				template.HTMLEscapeString(labels[i]), v, template.HTMLEscapeString(labels[i]), v)
			if i%every == 0 {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle" class="tick">%s</text>`,
					padL+w*(float64(i)+0.5), chartH-padB+16, template.HTMLEscapeString(labels[i]))
			}
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // built from escaped parts above
}

func open(b *strings.Builder, id string) {
	fmt.Fprintf(b, `<svg id="%s" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %g %g" width="%g" height="%g" role="img">`,
		template.HTMLEscapeString(id), chartW, chartH, chartW, chartH)
}

func axes(b *strings.Builder, top float64, xLabel, yLabel string) {
	plotH := chartH - padT - padB
	fmt.Fprintf(b, `<line x1="%g" y1="%g" x2="%g" y2="%g" class="axis"/>`, padL, padT, padL, chartH-padB)
	fmt.Fprintf(b, `<line x1="%g" y1="%g" x2="%g" y2="%g" class="axis"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		yy := padT + plotH*(1-float64(i)/4)
		fmt.Fprintf(b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" class="grid"/>`, padL, yy, chartW-padR, yy)
		fmt.Fprintf(b, `<text x="%g" y="%.1f" text-anchor="end" class="tick">%s</text>`, padL-6, yy+4, short(v))
	}
	fmt.Fprintf(b, `<text x="%g" y="%g" text-anchor="middle" class="label">%s</text>`, padL+(chartW-padL-padR)/2, chartH-6, template.HTMLEscapeString(xLabel))
	fmt.Fprintf(b, `<text x="14" y="%g" text-anchor="middle" class="label" transform="rotate(-90 14 %g)">%s</text>`, padT+plotH/2, padT+plotH/2, template.HTMLEscapeString(yLabel))
}

func legend(b *strings.Builder, k int, name, color string) {
	yy := padT + 14 + 18*float64(k)
	fmt.Fprintf(b, `<rect x="%g" y="%.1f" width="12" height="12" fill="%s"/>`, chartW-padR+12, yy-10, color)
	fmt.Fprintf(b, `<text x="%g" y="%.1f" class="legend">%s</text>`, chartW-padR+30, yy, template.HTMLEscapeString(name))
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten so the axis reads well.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func ticks(n int) []int {
	step := max(1, int(niceCeil(float64(n)/8)))
	var out []int
	for i := 0; i < n; i += step {
		out = append(out, i)
	}
	return out
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	default:
		return fmt.Sprintf("%g", v)
	}
}
