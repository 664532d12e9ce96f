// Package config reads a slided configuration file: TOML whose keys mirror
// the flags of `slided run`, so that a board boots the daemon from
// /etc/slided/slided.toml while an operator can still override any setting
// on the command line.
//
// A file describes one interface. slided runs one daemon per modem (see
// docs/operations.md): each process owns one TAP device, one modem, one
// control socket and one metrics port, and a fault in one link cannot stop
// another.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// File is one config file. A key that is absent, or set to its type's zero
// value ("" for strings, 0 for numbers, an empty list), leaves the flag at
// its default; Shaper is a pointer so that `shaper = false` can be told
// apart from no shaper key.
type File struct {
	TAP               string   `toml:"tap"`
	Node              int      `toml:"node"`
	PHY               string   `toml:"phy"`
	Addr              []string `toml:"addr"`
	Control           string   `toml:"control"`
	MTU               int      `toml:"mtu"`
	TxQueueLen        int      `toml:"txqueuelen"`
	Policy            string   `toml:"policy"`
	Shaper            *bool    `toml:"shaper"`
	Metrics           string   `toml:"metrics"`       // listen address of the Prometheus endpoint, e.g. 127.0.0.1:9469
	PCAP              string   `toml:"pcap"`          // path of a pcap file of the frames on air
	PCAPMaxSize       string   `toml:"pcap_max_size"` // largest size of one pcap file, e.g. "16M"
	PCAPFiles         int      `toml:"pcap_files"`    // pcap files in the ring
	LogLevel          string   `toml:"log_level"`
	LogFormat         string   `toml:"log_format"`
	User              string   `toml:"user"`
	FrameMax          int      `toml:"frame_max"`
	ARQ               *bool    `toml:"arq"`
	PropDelay         string   `toml:"prop_delay"`  // a Go duration, e.g. "700ms"
	Key               string   `toml:"key"`         // path of the pre-shared key file
	StateDir          string   `toml:"state_dir"`   // where the key's counters are kept across restarts
	KeyMaxAge         string   `toml:"key_max_age"` // a Go duration, e.g. "10m"
	NeighAnswer       *bool    `toml:"neigh_answer"`
	CWSenders         *bool    `toml:"cw_senders"`
	KISSServer        string   `toml:"kiss_server"`         // HOST:PORT of a KISS server sharing the TNC (docs/modems.md)
	KeyMode           string   `toml:"key_mode"`            // "seal" or "sign" (authenticate only, amateur bands)
	StationID         string   `toml:"station_id"`          // a callsign sent in clear while transmitting (kiss modems)
	StationIDInterval string   `toml:"station_id_interval"` // a Go duration, e.g. "10m"
	StallLimit        string   `toml:"stall_limit"`         // a Go duration, e.g. "60s" (docs/backpressure.md)
	ForwardQueue      string   `toml:"forward_queue"`       // memory for forwarded traffic, e.g. "4M" (docs/backpressure.md)
	AdaptiveMAC       *bool    `toml:"adaptive_mac"`        // the adaptive contention window (docs/mac.md)
	Reorder           *bool    `toml:"reorder"`             // in-order delivery per sending node (docs/link-arq.md)

	path string // the file Load read, for Apply's messages
}

// Sentinel errors carried by *Error; test with errors.Is.
var (
	// ErrSyntax: the file is not valid TOML.
	ErrSyntax = errors.New("toml syntax error")
	// ErrUnknownKey: a key that is not a slided setting.
	ErrUnknownKey = errors.New("unknown key")
	// ErrType: a known key with a value of the wrong type or range.
	ErrType = errors.New("wrong type")
	// ErrValue: the flag a key sets rejected its value.
	ErrValue = errors.New("invalid value")
	// ErrNoFlag: Apply was given a flag set without the flag a key sets.
	ErrNoFlag = errors.New("no such flag")
)

// Error locates a problem in a config file. Line is 1-based, 0 when unknown;
// Key is empty for syntax errors.
type Error struct {
	Path string
	Line int
	Key  string
	Msg  string
	Err  error // one of the sentinel errors
}

// Error formats as "path:line: key \"k\": msg", the form editors jump to.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the sentinel error.
func (e *Error) Unwrap() error { return e.Err }

// field is one key of File and the flag it sets.
type field struct {
	key   string
	flag  string
	index int          // field index in File
	kind  reflect.Type // the Go type, for type messages
}

// fields lists File's keys in declaration order (the order Apply sets them).
var fields = func() []field {
	t := reflect.TypeFor[File]()
	fs := make([]field, 0, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		key := sf.Tag.Get("toml")
		if !sf.IsExported() {
			continue
		}
		fs = append(fs, field{key: key, flag: strings.ReplaceAll(key, "_", "-"), index: i, kind: sf.Type})
	}
	return fs
}()

func lookupField(key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// Load reads and parses the file at path. It rejects syntax errors, unknown
// keys and values of the wrong type with an *Error (several unknown keys are
// joined with errors.Join). It checks types only: ranges and formats are
// checked by the flags' own validation after Apply, so the file and the
// command line give the same messages.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return parse(path, data)
}

func parse(path string, data []byte) (*File, error) {
	// Pass 1, untyped: syntax errors, then the types of the known keys, so
	// that a type error names its key and line.
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{Path: path, Line: pe.Position.Line, Msg: pe.Message, Err: ErrSyntax}
		}
		return nil, &Error{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: ErrSyntax}
	}
	for _, f := range fields {
		v, ok := raw[f.key]
		if !ok {
			continue
		}
		if msg := checkType(f.kind, v); msg != "" {
			return nil, &Error{Path: path, Line: keyLine(data, f.key), Key: f.key, Msg: msg, Err: ErrType}
		}
	}

	// Pass 2, typed, which must now succeed; its metadata lists the keys
	// that no field took.
	f := File{path: path}
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, &Error{Path: path, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: ErrType}
	}
	var errs []error
	seen := map[string]bool{}
	for _, k := range md.Undecoded() {
		if len(k) == 0 || seen[k[0]] {
			continue
		}
		// File is flat: report the top-level key ("modem" for [modem]
		// or modem.port), once.
		seen[k[0]] = true
		msg := "not a slided setting"
		if alt := strings.ReplaceAll(k[0], "-", "_"); alt != k[0] {
			if _, ok := lookupField(alt); ok {
				msg += fmt.Sprintf(" (did you mean %q?)", alt)
			}
		}
		errs = append(errs, &Error{Path: path, Line: keyLine(data, k[0]), Key: k[0], Msg: msg, Err: ErrUnknownKey})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &f, nil
}

// checkType returns why TOML value v cannot be stored in a field of type t,
// or "".
func checkType(t reflect.Type, v any) string {
	if !typeMatches(t, v) {
		return fmt.Sprintf("want %s, got %s", typeName(t), tomlTypeName(v))
	}
	if n, ok := v.(int64); ok && int64(int(n)) != n {
		return fmt.Sprintf("%d is out of range", n)
	}
	return ""
}

func typeMatches(t reflect.Type, v any) bool {
	switch t.Kind() {
	case reflect.String:
		_, ok := v.(string)
		return ok
	case reflect.Int:
		_, ok := v.(int64)
		return ok
	case reflect.Pointer: // *bool
		_, ok := v.(bool)
		return ok
	case reflect.Slice: // []string
		a, ok := v.([]any)
		if !ok {
			return false
		}
		for _, e := range a {
			if _, ok := e.(string); !ok {
				return false
			}
		}
		return true
	}
	return false
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int:
		return "an integer"
	case reflect.Pointer:
		return "a boolean (true or false)"
	case reflect.Slice:
		return `a list of strings, e.g. ["192.0.2.1/24"]`
	}
	return t.String()
}

func tomlTypeName(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("a string (%q)", v)
	case int64:
		return fmt.Sprintf("an integer (%d)", v)
	case float64:
		return fmt.Sprintf("a float (%g)", v)
	case bool:
		return fmt.Sprintf("a boolean (%t)", v)
	case []any:
		return "a list with other than strings in it"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// keyLine returns the 1-based line where top-level key first appears, as
// `key = ...`, `key.sub = ...`, `[key]`, `[key.sub]` or `[[key]]` (bare or
// quoted), or 0. It skips multi-line strings and is only used for messages.
func keyLine(data []byte, key string) int {
	inML := "" // the delimiter of the multi-line string we are in
	for i, line := range bytes.Split(data, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if inML != "" {
			if strings.Count(s, inML)%2 == 1 {
				inML = ""
			}
			continue
		}
		name := s
		switch {
		case strings.HasPrefix(s, "[["):
			name = s[2:]
		case strings.HasPrefix(s, "["):
			name = s[1:]
		default:
			if j := strings.IndexByte(s, '='); j >= 0 {
				for _, d := range []string{`"""`, `'''`} {
					if strings.Count(s[j:], d)%2 == 1 {
						inML = d
					}
				}
				name = s[:j]
			} else {
				continue
			}
		}
		if firstComponent(name) == key {
			return i + 1
		}
	}
	return 0
}

// firstComponent returns the first dotted component of a TOML key, with
// quotes removed (escapes in basic strings are not interpreted).
func firstComponent(s string) string {
	s = strings.TrimSpace(s)
	if s != "" && (s[0] == '"' || s[0] == '\'') {
		if j := strings.IndexByte(s[1:], s[0]); j >= 0 {
			return s[1 : 1+j]
		}
		return ""
	}
	if j := strings.IndexAny(s, ".] \t"); j >= 0 {
		s = s[:j]
	}
	return s
}

// Apply sets, on fs, every flag the file gives a value for, except the flags
// already set on the command line: flags win over the file. Call it after
// fs.Parse and before validating the flags. Each key sets the flag of the
// same name with '_' replaced by '-' (log_level sets -log-level); addr is
// joined with commas. A key with a value whose flag fs does not have is an
// error (ErrNoFlag), as is a value the flag rejects.
func (f *File) Apply(fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	v := reflect.ValueOf(f).Elem()
	for _, fd := range fields {
		val, ok := flagValue(v.Field(fd.index))
		if !ok || set[fd.flag] {
			continue
		}
		if fs.Lookup(fd.flag) == nil {
			return &Error{Path: f.path, Key: fd.key, Msg: fmt.Sprintf("%q has no flag -%s", fs.Name(), fd.flag), Err: ErrNoFlag}
		}
		if err := fs.Set(fd.flag, val); err != nil {
			return &Error{Path: f.path, Key: fd.key, Msg: fmt.Sprintf("-%s %s: %v", fd.flag, val, err), Err: ErrValue}
		}
	}
	return nil
}

// flagValue renders a File field as a flag value; ok is false for the zero
// value (the key is treated as absent).
func flagValue(v reflect.Value) (string, bool) {
	switch v.Kind() {
	case reflect.String:
		return v.String(), v.String() != ""
	case reflect.Int:
		return strconv.FormatInt(v.Int(), 10), v.Int() != 0
	case reflect.Pointer:
		if v.IsNil() {
			return "", false
		}
		return strconv.FormatBool(v.Elem().Bool()), true
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = strings.TrimSpace(v.Index(i).String())
		}
		return strings.Join(parts, ","), v.Len() > 0
	}
	return "", false
}
