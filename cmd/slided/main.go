// Command slided gives Linux an Ethernet interface (a TAP device) whose far
// side is a slow, shared, half-duplex channel: a modem, a TNC or a simulated
// medium. See README.md and docs/.
//
//	slided run    -tap NAME -node N -phy sim:PATH [-addr CIDR] [-control PATH]
//	slided sim    -listen PATH -rate BPS
//	slided status -control PATH [-json]
//	slided demo
//	slided bench  -protocol P -nodes N -a A (-load G | -saturated) -frames K -seed S [-json]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

const usage = `slided: a user-space MAC daemon for slow shared links

usage:
  slided run    -tap NAME -node N -phy sim:PATH [-addr CIDR] [-control PATH] [flags]
  slided sim    -listen PATH -rate BPS [flags]
  slided status -control PATH [-json]
  slided demo   (as root: two namespaces, a 9600 bit/s simulated channel, traffic, a report)
  slided bench  -protocol aloha|np-csma|csma -nodes N -a A (-load G | -saturated) -frames K -seed S [-json]

'slided COMMAND -h' lists a command's flags.
`

// exitError carries the process exit status for a handled failure whose
// message was already worded for the user.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = cmdRun(args)
	case "sim":
		err = cmdSim(args)
	case "status":
		err = cmdStatus(args, os.Stdout)
	case "demo":
		err = cmdDemo(args, os.Stdout)
	case "bench":
		err = cmdBench(args, os.Stdout)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "slided: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "slided %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// newFlags returns a flag set that reports errors itself in one line.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("slided "+name, flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	return fs
}

// parseFlags parses args and turns a flag error into exit status 2 (the
// flag package has already printed the reason and the usage).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return exitError{2}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "slided %s: unexpected argument %q\n", strings.TrimPrefix(fs.Name(), "slided "), fs.Arg(0))
		return exitError{2}
	}
	return nil
}

// usageError prints one line and returns exit status 2.
func usageError(cmd, format string, a ...any) error {
	fmt.Fprintf(os.Stderr, "slided %s: %s\n", cmd, fmt.Sprintf(format, a...))
	return exitError{2}
}

// logFlags are the logging flags every long-running command takes.
type logFlags struct {
	level  string
	format string
}

func (f *logFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.level, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&f.format, "log-format", "auto", "log format: auto (console on a terminal, JSON otherwise), console, json")
}

func (f *logFlags) logger(w io.Writer, component string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(f.level)
	if err != nil || f.level == "" {
		return zerolog.Logger{}, fmt.Errorf("-log-level %q: want debug, info, warn or error", f.level)
	}
	out := w
	switch f.format {
	case "json":
	case "console", "auto":
		tty := isTerminal(w)
		if f.format == "console" || tty {
			out = zerolog.ConsoleWriter{Out: w, NoColor: !tty, TimeFormat: time.TimeOnly}
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("-log-format %q: want auto, console or json", f.format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Str("component", component).Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}
