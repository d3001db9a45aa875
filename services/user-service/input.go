package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/meshdemo/meshdemo/services/user-service/userstore"
)

const (
	maxBody        = 1 << 20
	maxUsernameLen = 64
	defaultLimit   = 100
	maxLimit       = 1000
	maxKeyLen      = 255
)

// parseCanonicalInt accepts only the canonical decimal form of a non-negative int64:
// no sign, no leading zeros, no spaces ("+1", "01" and "1 " are refused, so one
// record has one URL).
func parseCanonicalInt(s string) (int64, bool) {
	if s == "" || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseID reads a path id: a canonical positive integer.
func parseID(raw string) (int64, error) {
	id, ok := parseCanonicalInt(raw)
	if !ok || id <= 0 {
		return 0, fmt.Errorf("id %q must be a positive integer in canonical form (digits, no sign, no leading zero)", raw)
	}
	return id, nil
}

// parsePage reads ?limit=N&after=ID.
func parsePage(rawQuery string) (limit int, after int64, err error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, 0, fmt.Errorf("query string: %v", err)
	}
	limit = defaultLimit
	for _, p := range []string{"limit", "after"} {
		vs, ok := q[p]
		if !ok {
			continue
		}
		if len(vs) != 1 {
			return 0, 0, fmt.Errorf("%s is given %d times; give it once", p, len(vs))
		}
		n, ok := parseCanonicalInt(vs[0])
		switch {
		case p == "limit" && (!ok || n < 1 || n > maxLimit):
			return 0, 0, fmt.Errorf("limit %q must be an integer from 1 to %d", vs[0], maxLimit)
		case p == "limit":
			limit = int(n)
		case !ok:
			return 0, 0, fmt.Errorf("after %q must be a user id (a non-negative integer in canonical form)", vs[0])
		default:
			after = n
		}
	}
	return limit, after, nil
}

// checkContentType: JSON, and if a charset is named, utf-8.
func checkContentType(ct string) error {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q: send application/json", ct)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return fmt.Errorf("Content-Type %q: charset %q is not supported; send utf-8", ct, cs)
	}
	return nil
}

// parseIfMatch reads If-Match: nil for no header or "*" (any current record), else
// the revisions it names. Weak tags never match (RFC 9110 strong comparison), nor do
// tags this service did not make.
func parseIfMatch(values []string) (*userstore.Match, error) {
	if len(values) == 0 {
		return nil, nil
	}
	m := &userstore.Match{}
	tags := 0
	for _, v := range values {
		for _, tag := range strings.Split(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "" { // an empty list element, which RFC 9110 §5.6.1 says to ignore
				continue
			}
			tags++
			if tag == "*" && len(values) == 1 && strings.TrimSpace(v) == "*" {
				return nil, nil
			}
			weak := strings.HasPrefix(tag, "W/")
			opaque := strings.TrimPrefix(tag, "W/")
			if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' || strings.ContainsAny(opaque[1:len(opaque)-1], "\" ") {
				return nil, fmt.Errorf("If-Match %q: %q is not an entity tag (send the ETag you got, quotes included)", v, tag)
			}
			if rev, ok := parseCanonicalInt(opaque[1 : len(opaque)-1]); ok && !weak {
				m.Revs = append(m.Revs, rev)
			}
		}
	}
	if tags == 0 {
		return nil, fmt.Errorf("If-Match %q holds no entity tag (send the ETag you got, quotes included, or *)", strings.Join(values, ", "))
	}
	return m, nil
}

// parseIdempotencyKey: at most one key of 1-255 visible ASCII characters.
func parseIdempotencyKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errors.New("Idempotency-Key is given more than once")
	}
	k := values[0]
	if k == "" || len(k) > maxKeyLen || strings.ContainsFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", fmt.Errorf("Idempotency-Key must be 1-%d visible ASCII characters", maxKeyLen)
	}
	return k, nil
}

// fingerprint identifies a create request's meaning (not its bytes), so a retry that
// re-serialises the same body still matches.
func fingerprint(username string) []byte {
	h := sha256.Sum256([]byte("username\x00" + username))
	return h[:]
}

// parseUserInput decodes {"username":"..."} strictly: valid UTF-8 only, one object,
// exactly the key "username" (case-sensitive, once), a string without lone
// surrogates, control or format characters. It is the pure part of decoding, fuzzed.
func parseUserInput(body []byte) (string, error) {
	if !utf8.Valid(body) {
		return "", errors.New("body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	switch {
	case errors.Is(err, io.EOF):
		return "", errors.New("body is empty: send {\"username\":\"...\"}")
	case err != nil:
		return "", fmt.Errorf("malformed JSON: %v", err)
	case tok != json.Delim('{'):
		return "", errors.New("malformed JSON: the body must be an object {\"username\":\"...\"}")
	}
	var name *string
	seen := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", fmt.Errorf("malformed JSON: %v", err)
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return "", fmt.Errorf("malformed JSON: %v", err)
		}
		switch {
		case key != "username" && strings.EqualFold(key, "username"):
			return "", fmt.Errorf("unknown field %q: field names are case-sensitive, send \"username\"", key)
		case key != "username":
			return "", fmt.Errorf("unknown field %q: only \"username\" may be sent", key)
		case seen:
			return "", errors.New("duplicate field \"username\"")
		}
		seen = true
		if string(raw) == "null" {
			continue
		}
		if raw[0] != '"' {
			return "", errors.New("malformed JSON: username must be a string")
		}
		if err := checkSurrogates(raw); err != nil {
			return "", err
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("malformed JSON: %v", err)
		}
		name = &s
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return "", fmt.Errorf("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return "", errors.New("malformed JSON: trailing data after the object")
		}
		return "", errors.New("malformed JSON: more than one value in the body")
	}
	if name == nil {
		return "", errors.New("username is required")
	}
	if err := checkUsername(*name); err != nil {
		return "", err
	}
	return *name, nil
}

// checkSurrogates refuses \uXXXX escapes that are lone UTF-16 surrogates, which
// encoding/json would silently turn into U+FFFD. raw is a valid JSON string.
func checkSurrogates(raw []byte) error {
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		i++
		if raw[i] != 'u' {
			continue
		}
		r, _ := strconv.ParseUint(string(raw[i+1:i+5]), 16, 32)
		i += 4
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return fmt.Errorf("username contains a lone surrogate \\u%04X", r)
		case r >= 0xD800 && r <= 0xDBFF:
			if i+6 >= len(raw) || raw[i+1] != '\\' || raw[i+2] != 'u' {
				return fmt.Errorf("username contains a lone surrogate \\u%04X", r)
			}
			lo, _ := strconv.ParseUint(string(raw[i+3:i+7]), 16, 32)
			if lo < 0xDC00 || lo > 0xDFFF {
				return fmt.Errorf("username contains a lone surrogate \\u%04X", r)
			}
			i += 6
		}
	}
	return nil
}

func checkUsername(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return errors.New("username must not be empty")
	case utf8.RuneCountInString(name) > maxUsernameLen:
		return fmt.Errorf("username is %d characters; the maximum is %d", utf8.RuneCountInString(name), maxUsernameLen)
	}
	for _, r := range name {
		switch {
		case unicode.Is(unicode.Cc, r):
			return fmt.Errorf("username must not contain control characters (U+%04X)", r)
		case unicode.Is(unicode.Cf, r), unicode.Is(unicode.Zl, r), unicode.Is(unicode.Zp, r):
			return fmt.Errorf("username must not contain format or separator characters such as bidi overrides (U+%04X)", r)
		}
	}
	return nil
}
