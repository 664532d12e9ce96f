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
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("load key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("load key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("load key %s: not a regular file: %w", path, ErrKeyFormat)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return Key{}, fmt.Errorf("load key %s: mode %#o: %w", path, perm, ErrKeyPerm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return Key{}, fmt.Errorf("load key %s: owner uid %d, daemon runs as uid %d: %w", path, st.Uid, os.Geteuid(), ErrKeyOwner)
	}
	text, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return Key{}, fmt.Errorf("load key: %w", err)
	}
	k, err := ParseKey(text)
	if err != nil {
		return Key{}, fmt.Errorf("load key %s: %w", path, err)
	}
	return k, nil
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
