package node

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadKEK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, err := loadKEK(dir, nil)
	if err != nil || len(first) != kekSize {
		t.Fatalf("generate: %d bytes, %v", len(first), err)
	}
	info, err := os.Stat(filepath.Join(dir, "kek"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("kek file: %v, mode %v", err, info.Mode())
	}
	again, err := loadKEK(dir, nil)
	if err != nil || !bytes.Equal(first, again) {
		t.Fatalf("reload: %v", err)
	}
	configured := bytes.Repeat([]byte{7}, kekSize)
	if got, err := loadKEK(dir, configured); err != nil || !bytes.Equal(got, configured) {
		t.Fatalf("configured key: %v", err)
	}
	if _, err := loadKEK(dir, []byte("short")); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("short configured key: %v", err)
	}
	bad := t.TempDir()
	_ = os.WriteFile(filepath.Join(bad, "kek"), []byte("not base64!\n"), 0o600)
	if _, err := loadKEK(bad, nil); err == nil {
		t.Fatal("a corrupt kek file was accepted")
	}
}

func TestParseKEKAndBackoff(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{0xfb}, kekSize)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding} {
		if got, err := ParseKEK(enc.EncodeToString(key)); err != nil || !bytes.Equal(got, key) {
			t.Errorf("ParseKEK: %v", err)
		}
	}
	for _, bad := range []string{"", "!!", base64.StdEncoding.EncodeToString(key[:16])} {
		if _, err := ParseKEK(bad); err == nil {
			t.Errorf("ParseKEK(%q) accepted", bad)
		}
	}
	got, err := ParseBackoff(" 1s, 2s,4m ")
	if err != nil || len(got) != 3 || got[2] != 4*time.Minute {
		t.Fatalf("ParseBackoff: %v %v", got, err)
	}
	if got, err := ParseBackoff(""); err != nil || got != nil {
		t.Fatalf("empty backoff: %v %v", got, err)
	}
	for _, bad := range []string{"1s,soon", "-1s", "0s"} {
		if _, err := ParseBackoff(bad); err == nil {
			t.Errorf("ParseBackoff(%q) accepted", bad)
		}
	}
}
