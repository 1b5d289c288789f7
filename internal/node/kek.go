package node

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tollgate/tollgate/domain"
)

// kekSize is the length of the key-encryption key (AES-256).
const kekSize = domain.KEKSize

// loadKEK returns the key-encryption key that seals secrets Tollgate must
// be able to read back (webhook signing secrets): the configured one, else
// <data-dir>/kek, created with a random key (mode 0600) on first start.
//
// Nodes of a cluster each have their own data dir, so they must be given
// the same key (--key-encryption-key): a secret sealed on one node is opened
// by whichever node delivers.
func loadKEK(dataDir string, configured []byte) ([]byte, error) {
	if configured != nil {
		if len(configured) != kekSize {
			return nil, fmt.Errorf("%w: the key-encryption key must be %d bytes, not %d", ErrInvalidConfig, kekSize, len(configured))
		}
		return configured, nil
	}
	path := filepath.Join(dataDir, "kek")
	raw, err := os.ReadFile(path)
	if err == nil {
		key, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if derr != nil || len(key) != kekSize {
			return nil, fmt.Errorf("%s does not hold the base64 of %d bytes", path, kekSize)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, kekSize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadKEK(dataDir, nil) // another process made it first
	}
	if err != nil {
		return nil, err
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return key, nil
}

// ParseKEK reads a key-encryption key given as base64 (standard or URL
// alphabet, padded or not).
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err := enc.DecodeString(s); err == nil {
			if len(key) != kekSize {
				return nil, fmt.Errorf("%w: the key-encryption key must be the base64 of %d bytes, not %d", ErrInvalidConfig, kekSize, len(key))
			}
			return key, nil
		}
	}
	return nil, fmt.Errorf("%w: the key-encryption key is not base64", ErrInvalidConfig)
}
