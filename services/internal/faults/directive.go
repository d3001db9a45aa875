package faults

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshdemo/meshdemo/services/headers"
)

// Bounds on the directive header, so a hostile header costs little to reject.
const (
	MaxHeaderBytes = 1024 // all field lines of the header, joined with ","
	MaxDirectives  = 16
	MaxActions     = 8 // per directive
	maxTargetLen   = 63
)

// Kind names a fault. The same names label the OnInject hook (and so the lead's
// metrics) and the two header actions.
type Kind string

// Fault kinds.
const (
	KindDelay     Kind = "delay"      // a sleep: FAULT_DELAY/FAULT_LATENCY or a delay directive
	KindAbort     Kind = "abort"      // an abort directive from the header
	KindSick      Kind = "sick"       // the instance is sick (FAULT_SICK or POST /admin/sick)
	KindErrorRate Kind = "error-rate" // FAULT_ERROR_RATE fired
)

// Action is one step of a directive: sleep Delay, or answer with Status, each with
// probability Percent/100.
type Action struct {
	Kind    Kind          // KindDelay or KindAbort
	Delay   time.Duration // for KindDelay
	Status  int           // for KindAbort, 400-599
	Percent float64       // 0-100; 100 when the directive gives none
}

// String renders the action in the header syntax; "@100" is left out.
func (a Action) String() string {
	var s string
	switch a.Kind {
	case KindDelay:
		s = "delay:" + a.Delay.String()
	case KindAbort:
		s = "abort:" + strconv.Itoa(a.Status)
	default:
		s = string(a.Kind) + ":?"
	}
	if a.Percent != 100 {
		s += "@" + fmtPercent(a.Percent)
	}
	return s
}

// Directive is the list of actions aimed at one service.
type Directive struct {
	Target  string
	Actions []Action
}

// Directives is a parsed X-Meshdemo-Fault header, in header order.
type Directives []Directive

// String renders the canonical header value; ParseDirectives(ds.String()) equals ds.
func (ds Directives) String() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(d.Target)
		b.WriteByte('=')
		for j, a := range d.Actions {
			if j > 0 {
				b.WriteByte(';')
			}
			b.WriteString(a.String())
		}
	}
	return b.String()
}

// For returns the actions aimed at service, in header order (a service may be named by
// more than one directive). Targets match exactly, case included.
func (ds Directives) For(service string) []Action {
	var out []Action
	for _, d := range ds {
		if d.Target == service {
			out = append(out, d.Actions...)
		}
	}
	return out
}

// ParseDirectives parses an X-Meshdemo-Fault value. Grammar (ABNF; optional
// whitespace is allowed around ",", ";" and "="):
//
//	faults    = directive *( "," directive )
//	directive = target "=" action *( ";" action )
//	target    = 1*63( ALPHA / DIGIT / "." / "_" / "-" )  ; a SERVICE_NAME, exact match
//	action    = ( "delay:" duration / "abort:" status ) [ "@" percent ]
//	duration  = Go duration (time.ParseDuration), not negative: 250ms, 5.5s, 1m30s
//	status    = 3DIGIT                                   ; 400 to 599
//	percent   = 1*DIGIT [ "." 1*DIGIT ]                  ; 0 to 100, default 100
//
// At most MaxHeaderBytes bytes, MaxDirectives directives and MaxActions actions per
// directive. An empty value parses to no directives. Examples:
//
//	server2=delay:5.5s
//	server1=abort:503@50
//	server2=delay:200ms@20;abort:500@10, user-service=delay:1s
//
// A hop applies its own actions in order: each delay sleeps (if its percent fires), the
// first abort that fires answers with its status and ends the request there.
func ParseDirectives(s string) (Directives, error) {
	if len(s) > MaxHeaderBytes {
		return nil, fmt.Errorf("%s is %d bytes, at most %d allowed", headers.Fault, len(s), MaxHeaderBytes)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	if n := strings.Count(s, ",") + 1; n > MaxDirectives {
		return nil, fmt.Errorf("%d directives, at most %d allowed", n, MaxDirectives)
	}
	var ds Directives
	for i, raw := range strings.Split(s, ",") {
		d, err := parseDirective(strings.TrimSpace(raw))
		if err != nil {
			return nil, fmt.Errorf("directive %d %q: %w", i+1, strings.TrimSpace(raw), err)
		}
		ds = append(ds, d)
	}
	return ds, nil
}

func parseDirective(s string) (Directive, error) {
	if s == "" {
		return Directive{}, errors.New("empty directive (stray comma?)")
	}
	target, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Directive{}, errors.New(`want target=action, for example server2=delay:5.5s`)
	}
	target = strings.TrimSpace(target)
	if err := checkTarget(target); err != nil {
		return Directive{}, err
	}
	parts := strings.Split(rest, ";")
	if len(parts) > MaxActions {
		return Directive{}, fmt.Errorf("%d actions, at most %d allowed", len(parts), MaxActions)
	}
	d := Directive{Target: target, Actions: make([]Action, 0, len(parts))}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		a, err := parseAction(p)
		if err != nil {
			if p == "" {
				return Directive{}, fmt.Errorf("empty action: %w", err)
			}
			return Directive{}, fmt.Errorf("action %q: %w", p, err)
		}
		d.Actions = append(d.Actions, a)
	}
	return d, nil
}

func parseAction(s string) (Action, error) {
	name, arg, ok := strings.Cut(s, ":")
	if !ok {
		return Action{}, errors.New(`want delay:DURATION or abort:STATUS, optionally followed by @PERCENT`)
	}
	a := Action{Percent: 100}
	if v, pct, ok := strings.Cut(arg, "@"); ok {
		p, err := parsePercent(pct)
		if err != nil {
			return Action{}, fmt.Errorf("percent: %w", err)
		}
		arg, a.Percent = v, p
	}
	switch Kind(name) {
	case KindDelay:
		d, err := time.ParseDuration(arg)
		if err != nil {
			return Action{}, err
		}
		if d < 0 {
			return Action{}, fmt.Errorf("delay %s is negative", d)
		}
		a.Kind, a.Delay = KindDelay, d
	case KindAbort:
		code, err := parseStatus(arg)
		if err != nil {
			return Action{}, err
		}
		a.Kind, a.Status = KindAbort, code
	default:
		return Action{}, fmt.Errorf("unknown action %q: want delay or abort", name)
	}
	return a, nil
}

func parseStatus(s string) (int, error) {
	if len(s) != 3 || !isDigits(s) {
		return 0, fmt.Errorf("status %q: want three digits, 400 to 599", s)
	}
	code, _ := strconv.Atoi(s)
	if !isErrorStatus(code) {
		return 0, fmt.Errorf("status %d: want an error status, 400 to 599", code)
	}
	return code, nil
}

// checkTarget enforces the target token; New uses it on the service name too, so a
// workload can always be named by a directive.
func checkTarget(s string) error {
	if s == "" {
		return errors.New("missing target service name before '='")
	}
	if len(s) > maxTargetLen {
		return fmt.Errorf("target is %d characters, at most %d allowed", len(s), maxTargetLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("target %q: only letters, digits, '.', '_' and '-' allowed", s)
		}
	}
	return nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
