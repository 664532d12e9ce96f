package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

func writeFile(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slided.toml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func ptr[T any](v T) *T { return &v }

const goodFile = `# a board on the 434 MHz net
tap = "slide0"
node = 7
phy = "serial:/dev/ttyUSB0?baud=19200&air=1200"
addr = ["192.0.2.7/24", "fd00::7/64"]
control = "/run/slided/slide0.sock"
mtu = 576
txqueuelen = 4
policy = "drop-tail"
shaper = false
metrics = "127.0.0.1:9469"
pcap = "/var/lib/slided/air.pcap"
log_level = "debug"
log_format = "json"
user = "slided"
`

func TestLoadGood(t *testing.T) {
	tests := []struct {
		desc    string
		content string
		want    File
	}{
		{desc: "every key", content: goodFile, want: File{
			TAP: "slide0", Node: 7, PHY: "serial:/dev/ttyUSB0?baud=19200&air=1200",
			Addr: []string{"192.0.2.7/24", "fd00::7/64"}, Control: "/run/slided/slide0.sock",
			MTU: 576, TxQueueLen: 4, Policy: "drop-tail", Shaper: ptr(false), Metrics: "127.0.0.1:9469",
			PCAP: "/var/lib/slided/air.pcap", LogLevel: "debug", LogFormat: "json", User: "slided",
		}},
		{desc: "empty file", content: "", want: File{}},
		{desc: "comments and quoted key", content: "# nothing\n\"tap\" = 'x' # trailing\n", want: File{TAP: "x"}},
		{desc: "shaper true", content: "shaper = true\n", want: File{Shaper: ptr(true)}},
		{desc: "key and its state", content: "key = \"/etc/slided/key\"\nstate_dir = \"/srv/slided\"\nkey_max_age = \"10m\"\n",
			want: File{Key: "/etc/slided/key", StateDir: "/srv/slided", KeyMaxAge: "10m"}},
		{desc: "stall limit and adaptive MAC", content: "stall_limit = \"90s\"\nadaptive_mac = true\n",
			want: File{StallLimit: "90s", AdaptiveMAC: ptr(true)}},
		{desc: "reorder off", content: "reorder = false\n", want: File{Reorder: ptr(false)}},
		{desc: "multi-line string", content: "phy = \"\"\"\nsim:/run/m.sock\"\"\"\nnode = 2\n",
			want: File{PHY: "sim:/run/m.sock", Node: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			path := writeFile(t, tc.content)
			got, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.path = path
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tc.want)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		desc     string
		content  string
		wantErr  error
		wantLine int
		wantKey  string
		wantMsg  string // a substring of the message
	}{
		{desc: "unknown key", content: "tap = \"a\"\n\nmodem = \"x\"\n",
			wantErr: ErrUnknownKey, wantLine: 3, wantKey: "modem"},
		{desc: "hyphenated key suggests the underscore", content: "node = 1\nlog-level = \"debug\"\n",
			wantErr: ErrUnknownKey, wantLine: 2, wantKey: "log-level", wantMsg: `did you mean "log_level"`},
		{desc: "unknown table", content: "node = 1\n\n[modem]\nbaud = 9600\n",
			wantErr: ErrUnknownKey, wantLine: 3, wantKey: "modem"},
		{desc: "unknown array of tables", content: "node = 1\n[[links]]\ntap = \"a\"\n",
			wantErr: ErrUnknownKey, wantLine: 2, wantKey: "links"},
		{desc: "unknown dotted key", content: "node = 1\nserial.baud = 9600\n",
			wantErr: ErrUnknownKey, wantLine: 2, wantKey: "serial"},
		{desc: "unknown quoted key", content: "node = 1\n\n\n'my key' = 1\n",
			wantErr: ErrUnknownKey, wantLine: 4, wantKey: "my key"},
		{desc: "known key nested in unknown table", content: "[run]\ntap = \"a\"\n",
			wantErr: ErrUnknownKey, wantLine: 1, wantKey: "run"},
		{desc: "node as string", content: "tap = \"a\"\nnode = \"5\"\n",
			wantErr: ErrType, wantLine: 2, wantKey: "node", wantMsg: `want an integer, got a string ("5")`},
		{desc: "addr as string", content: "addr = \"192.0.2.1/24\"\n",
			wantErr: ErrType, wantLine: 1, wantKey: "addr", wantMsg: "want a list of strings"},
		{desc: "addr with a number", content: "\naddr = [\"192.0.2.1/24\", 5]\n",
			wantErr: ErrType, wantLine: 2, wantKey: "addr"},
		{desc: "shaper as string", content: "shaper = \"yes\"\n",
			wantErr: ErrType, wantLine: 1, wantKey: "shaper", wantMsg: "want a boolean"},
		{desc: "stall_limit as integer", content: "stall_limit = 60\n",
			wantErr: ErrType, wantLine: 1, wantKey: "stall_limit", wantMsg: "want a string, got an integer (60)"},
		{desc: "adaptive_mac as string", content: "\nadaptive_mac = \"on\"\n",
			wantErr: ErrType, wantLine: 2, wantKey: "adaptive_mac", wantMsg: "want a boolean"},
		{desc: "mtu as float", content: "mtu = 576.5\n",
			wantErr: ErrType, wantLine: 1, wantKey: "mtu", wantMsg: "got a float"},
		{desc: "log_level as table", content: "[log_level]\nx = 1\n",
			wantErr: ErrType, wantLine: 1, wantKey: "log_level", wantMsg: "got a table"},
		{desc: "missing closing quote", content: "tap = \"a\"\nphy = \"sim:/x\nnode = 1\n",
			wantErr: ErrSyntax, wantLine: 2},
		{desc: "no value", content: "tap = \"a\"\nnode = 1\nmtu =\n",
			wantErr: ErrSyntax, wantLine: 3},
		{desc: "duplicate key", content: "node = 1\nnode = 2\n",
			wantErr: ErrSyntax, wantLine: 2},
		{desc: "garbage after value", content: "\n\n\nnode = 5x\n",
			wantErr: ErrSyntax, wantLine: 4},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			path := writeFile(t, tc.content)
			f, err := Load(path)
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want %v", f, tc.wantErr)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("%v is no *Error", err)
			}
			if ce.Line != tc.wantLine || ce.Key != tc.wantKey || ce.Path != path {
				t.Errorf("got path %q line %d key %q, want %q line %d key %q (%v)",
					ce.Path, ce.Line, ce.Key, path, tc.wantLine, tc.wantKey, err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("message %q does not contain %q", err, tc.wantMsg)
			}
			if prefix := "config: " + path + ":"; !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("message %q does not start with %q", err, prefix)
			}
		})
	}
}

func TestLoadSeveralUnknownKeys(t *testing.T) {
	path := writeFile(t, "alpha = 1\nnode = 1\nbeta = 2\n")
	_, err := Load(path)
	var lines []string
	for _, line := range strings.Split(err.Error(), "\n") {
		lines = append(lines, line)
	}
	want := []string{
		"config: " + path + `:1: key "alpha": not a slided setting`,
		"config: " + path + `:3: key "beta": not a slided setting`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

// An integer beyond the platform's int is a type error naming the key on
// 32-bit boards; on 64-bit ones it loads and the flag's range check rejects
// it later.
func TestLoadIntRange(t *testing.T) {
	path := writeFile(t, "tap = \"a\"\nnode = 5000000000\n")
	f, err := Load(path)
	if strconv.IntSize == 64 {
		if err != nil || int64(f.Node) != 5000000000 {
			t.Fatalf("got %+v, %v; want node 5000000000", f, err)
		}
		return
	}
	var ce *Error
	if !errors.Is(err, ErrType) || !errors.As(err, &ce) || ce.Key != "node" || ce.Line != 2 {
		t.Fatalf("got %v, want ErrType for node on line 2", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("got %v, want ErrNotExist", err)
	}
}

// runFlagSet mirrors the flags of `slided run` that the file sets.
type runFlagSet struct {
	fs                                             *flag.FlagSet
	tap, phy, addr, control, policy, level, format string
	metrics, pcap, user                            string
	node, mtu, txqueuelen                          int
	shaper, adaptive                               bool
	stall                                          time.Duration
}

func newRunFlags() *runFlagSet {
	r := &runFlagSet{fs: flag.NewFlagSet("slided run", flag.ContinueOnError)}
	r.fs.SetOutput(io.Discard)
	r.fs.StringVar(&r.tap, "tap", "", "")
	r.fs.IntVar(&r.node, "node", 0, "")
	r.fs.StringVar(&r.phy, "phy", "", "")
	r.fs.StringVar(&r.addr, "addr", "", "")
	r.fs.StringVar(&r.control, "control", "", "")
	r.fs.IntVar(&r.mtu, "mtu", 1500, "")
	r.fs.IntVar(&r.txqueuelen, "txqueuelen", 16, "")
	r.fs.StringVar(&r.policy, "policy", "block", "")
	r.fs.BoolVar(&r.shaper, "shaper", true, "")
	r.fs.StringVar(&r.metrics, "metrics", "", "")
	r.fs.StringVar(&r.pcap, "pcap", "", "")
	r.fs.StringVar(&r.level, "log-level", "info", "")
	r.fs.StringVar(&r.format, "log-format", "auto", "")
	r.fs.StringVar(&r.user, "user", "", "")
	r.fs.DurationVar(&r.stall, "stall-limit", time.Minute, "")
	r.fs.BoolVar(&r.adaptive, "adaptive-mac", false, "")
	return r
}

func TestApply(t *testing.T) {
	tests := []struct {
		desc  string
		file  string
		args  []string
		check func(r *runFlagSet) string // returns what is wrong, or ""
	}{
		{desc: "file sets every flag", file: goodFile, check: func(r *runFlagSet) string {
			got := []any{r.tap, r.node, r.phy, r.addr, r.control, r.mtu, r.txqueuelen, r.policy, r.shaper,
				r.metrics, r.pcap, r.level, r.format, r.user}
			want := []any{"slide0", 7, "serial:/dev/ttyUSB0?baud=19200&air=1200", "192.0.2.7/24,fd00::7/64",
				"/run/slided/slide0.sock", 576, 4, "drop-tail", false, "127.0.0.1:9469",
				"/var/lib/slided/air.pcap", "debug", "json", "slided"}
			if !reflect.DeepEqual(got, want) {
				return "got " + fmtAny(got) + ", want " + fmtAny(want)
			}
			return ""
		}},
		{desc: "flags win over the file", file: goodFile,
			args: []string{"-node", "9", "-log-level", "warn", "-shaper=true", "-addr", "198.51.100.1/24"},
			check: func(r *runFlagSet) string {
				if r.node != 9 || r.level != "warn" || !r.shaper || r.addr != "198.51.100.1/24" {
					return "command-line values lost: " + fmtAny([]any{r.node, r.level, r.shaper, r.addr})
				}
				if r.tap != "slide0" || r.mtu != 576 {
					return "file values not applied: " + fmtAny([]any{r.tap, r.mtu})
				}
				return ""
			}},
		{desc: "a flag set to its default on the command line still wins", file: "mtu = 576\n",
			args: []string{"-mtu", "1500"},
			check: func(r *runFlagSet) string {
				if r.mtu != 1500 {
					return "mtu " + fmtAny([]any{r.mtu}) + ", want 1500"
				}
				return ""
			}},
		{desc: "absent keys keep the defaults", file: "tap = \"t\"\n", check: func(r *runFlagSet) string {
			if r.mtu != 1500 || r.policy != "block" || !r.shaper || r.level != "info" || r.tap != "t" ||
				r.stall != time.Minute || r.adaptive {
				return "defaults changed: " + fmtAny([]any{r.mtu, r.policy, r.shaper, r.level, r.tap, r.stall, r.adaptive})
			}
			return ""
		}},
		{desc: "stall limit and adaptive MAC", file: "stall_limit = \"2m30s\"\nadaptive_mac = true\n", check: func(r *runFlagSet) string {
			if r.stall != 150*time.Second || !r.adaptive {
				return "stall limit " + r.stall.String() + ", adaptive " + strconv.FormatBool(r.adaptive) + "; want 2m30s, true"
			}
			return ""
		}},
		{desc: "adaptive MAC off on the command line wins", file: "adaptive_mac = true\n", args: []string{"-adaptive-mac=false"},
			check: func(r *runFlagSet) string {
				if r.adaptive {
					return "adaptive MAC on, want the command line's off"
				}
				return ""
			}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			f, err := Load(writeFile(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			r := newRunFlags()
			if err := r.fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			if err := f.Apply(r.fs); err != nil {
				t.Fatal(err)
			}
			if msg := tc.check(r); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestApplyErrors(t *testing.T) {
	t.Run("key without a flag", func(t *testing.T) {
		path := writeFile(t, "tap = \"a\"\npcap = \"/tmp/x.pcap\"\n")
		f, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		fs := flag.NewFlagSet("slided run", flag.ContinueOnError)
		var tap string
		fs.StringVar(&tap, "tap", "", "")
		err = f.Apply(fs)
		var ce *Error
		if !errors.Is(err, ErrNoFlag) || !errors.As(err, &ce) || ce.Key != "pcap" || ce.Path != path {
			t.Fatalf("got %v, want ErrNoFlag for key pcap in %s", err, path)
		}
	})
	t.Run("stall limit that is no duration", func(t *testing.T) {
		f, err := Load(writeFile(t, "stall_limit = \"a minute\"\n"))
		if err != nil {
			t.Fatal(err)
		}
		err = f.Apply(newRunFlags().fs)
		var ce *Error
		if !errors.Is(err, ErrValue) || !errors.As(err, &ce) || ce.Key != "stall_limit" {
			t.Fatalf("got %v, want ErrValue for key stall_limit", err)
		}
	})
	t.Run("flag rejects the value", func(t *testing.T) {
		f := &File{Policy: "sometimes"}
		fs := flag.NewFlagSet("slided run", flag.ContinueOnError)
		fs.Func("policy", "", func(s string) error {
			if s != "block" {
				return errors.New("want block")
			}
			return nil
		})
		err := f.Apply(fs)
		var ce *Error
		if !errors.Is(err, ErrValue) || !errors.As(err, &ce) || ce.Key != "policy" {
			t.Fatalf("got %v, want ErrValue for key policy", err)
		}
	})
}

func fmtAny(v []any) string { return fmt.Sprintf("%#v", v) }

// TestSampleConfig keeps packaging/slided.toml loadable and applicable to
// the flags of slided run.
func TestSampleConfig(t *testing.T) {
	f, err := Load(filepath.Join("..", "packaging", "slided.toml"))
	if err != nil {
		t.Fatal(err)
	}
	r := newRunFlags()
	if err := f.Apply(r.fs); err != nil {
		t.Fatal(err)
	}
	if r.tap == "" || r.node == 0 || r.phy == "" {
		t.Errorf("sample config lacks a required key: tap %q node %d phy %q", r.tap, r.node, r.phy)
	}
}

func FuzzLoad(f *testing.F) {
	f.Add([]byte(goodFile))
	f.Add([]byte("[modem]\nbaud = 9600\n"))
	f.Add([]byte("addr = [\"a\", 1]\nnode = \"x\"\n"))
	f.Add([]byte("phy = '''\nx'''\n\"q\".r = 1\n"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "fuzz.toml")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v is no *Error", err)
			}
			if ce.Line < 0 || ce.Line > strings.Count(string(data), "\n")+1 {
				t.Fatalf("line %d outside the file: %v", ce.Line, err)
			}
			return
		}
		// Whatever loads must apply to the full flag set without panicking.
		_ = cfg.Apply(newRunFlags().fs)
	})
}
