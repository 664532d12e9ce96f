package auth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// Key-file errors; LoadKey wraps them with the path.
var (
	// ErrKeyPerm: the key file is readable or writable by group or others.
	ErrKeyPerm = errors.New("key file must not be accessible by group or others (chmod 600)")
	// ErrKeyOwner: the key file belongs to another user than the daemon's.
	ErrKeyOwner = errors.New("key file is owned by another user")
	// ErrKeyFormat: the file is not 64 hexadecimal digits.
	ErrKeyFormat = errors.New("key file must hold 64 hexadecimal digits (32 bytes)")
)

// LoadKey reads a key from path: 64 hexadecimal digits (surrounding
// whitespace ignored), as written by `openssl rand -hex 32`. It refuses a
// file that is not regular, whose mode grants any access to group or others,
// or whose owner is not the effective user. The checks are made on the open
// file, so the file checked is the file read.
func LoadKey(path string) (Key, error) {
	text, err := readKeyFile(path)
	if err != nil {
		return Key{}, err
	}
	k, err := ParseKey(text)
	if err != nil {
		return Key{}, fmt.Errorf("load key %s: %w", path, err)
	}
	return k, nil
}

// readKeyFile reads at most 1 KiB of a key file after LoadKey's checks.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load key %s: not a regular file: %w", path, ErrKeyFormat)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("load key %s: mode %#o: %w", path, perm, ErrKeyPerm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("load key %s: owner uid %d, daemon runs as uid %d: %w", path, st.Uid, os.Geteuid(), ErrKeyOwner)
	}
	text, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("load key: %w", err)
	}
	return text, nil
}

// ParseKey decodes 64 hexadecimal digits, surrounding whitespace ignored.
func ParseKey(text []byte) (Key, error) {
	text = bytes.TrimSpace(text)
	var k Key
	if len(text) != 2*KeySize {
		return Key{}, ErrKeyFormat
	}
	if _, err := hex.Decode(k[:], text); err != nil {
		return Key{}, ErrKeyFormat
	}
	return k, nil
}

// ErrKeyCount: the key file holds more than two keys.
var ErrKeyCount = errors.New("key file must hold one key, or two during a changeover (one per line)")

// LoadKeys reads one or two keys from path, one per line (64 hexadecimal
// digits each; blank lines and lines starting with # ignored), with the
// checks of LoadKey. The first key seals and opens; a second one only opens:
// during a changeover every node accepts both keys before any seals with the
// new one (docs/operations.md). A file of one key, as LoadKey reads it, is
// the usual case.
func LoadKeys(path string) ([]Key, error) {
	text, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	keys, err := ParseKeys(text)
	if err != nil {
		return nil, fmt.Errorf("load key %s: %w", path, err)
	}
	return keys, nil
}

// ParseKeys decodes one or two keys, one per line; blank lines and lines
// starting with # are ignored.
func ParseKeys(text []byte) ([]Key, error) {
	var keys []Key
	for _, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if len(keys) == 2 {
			return nil, ErrKeyCount
		}
		k, err := ParseKey(line)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, ErrKeyFormat
	}
	return keys, nil
}
