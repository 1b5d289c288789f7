package domain

import (
	"bytes"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"strings"
	"testing"
)

var allPrefixes = []string{PrefixLive, PrefixTest, PrefixAccessToken, PrefixRefreshToken, PrefixClientSecret}

func seeded(seed byte) *mrand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

// withChecksum appends a correct checksum, so only the check under test can
// reject the string.
func withChecksum(s string) string { return s + checksum(s) }

func TestCredentialRoundTrip(t *testing.T) {
	t.Parallel()
	wantEnv := map[string]string{PrefixLive: EnvLive, PrefixTest: EnvTest}
	for _, prefix := range allPrefixes {
		t.Run(prefix, func(t *testing.T) {
			t.Parallel()
			s, made, err := NewCredential(rand.Reader, prefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != len(prefix)+bodyLen || !strings.HasPrefix(s, prefix) {
				t.Fatalf("NewCredential = %q: want %s + %d characters", s, prefix, bodyLen)
			}
			got, err := ParseCredential(s)
			if err != nil {
				t.Fatalf("ParseCredential(%q): %v", s, err)
			}
			if got != made {
				t.Fatalf("parsed %+v, generated %+v", got, made)
			}
			if got.Selector != s[len(prefix):len(prefix)+selectorLen] {
				t.Errorf("Selector = %q, want the %d characters after the prefix of %q", got.Selector, selectorLen, s)
			}
			if got.Environment() != wantEnv[prefix] {
				t.Errorf("Environment() = %q, want %q", got.Environment(), wantEnv[prefix])
			}
			if got.TokenID() != "tok_"+got.Selector {
				t.Errorf("TokenID() = %q, want tok_%s", got.TokenID(), got.Selector)
			}
		})
	}
}

func TestParseCredentialRejectsEveryOneCharacterChange(t *testing.T) {
	t.Parallel()
	for _, prefix := range allPrefixes {
		s, _, err := NewCredential(seeded(1), prefix)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(prefix); i < len(s); i++ {
			for j := 0; j < len(base62); j++ {
				if base62[j] == s[i] {
					continue
				}
				changed := s[:i] + string(base62[j]) + s[i+1:]
				if _, err := ParseCredential(changed); !errors.Is(err, ErrMalformedCredential) {
					t.Fatalf("%q (position %d changed) accepted: err = %v", changed, i, err)
				}
			}
		}
	}
}

func TestParseCredentialRejectsMalformed(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("a", selectorLen+secretLen)
	valid := withChecksum(PrefixLive + body)
	if _, err := ParseCredential(valid); err != nil {
		t.Fatalf("baseline %q rejected: %v", valid, err)
	}
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"prefix only", PrefixLive},
		{"no prefix", body + checksum(body)},
		{"unknown prefix", withChecksum("tg_prod_" + body)},
		{"upper-case prefix", withChecksum("TG_LIVE_" + body)},
		{"prefix without underscore", withChecksum("tg_live" + body)},
		{"one character short", withChecksum(PrefixLive + body[1:])},
		{"one character long", withChecksum(PrefixLive + body + "a")},
		{"trailing newline", valid + "\n"},
		{"leading space", " " + valid},
		{"checksum missing", PrefixLive + body},
		{"dash in body", withChecksum(PrefixLive + "-" + body[1:])},
		{"underscore in body", withChecksum(PrefixLive + body[1:] + "_")},
		{"plus in body", withChecksum(PrefixLive + body[:20] + "+" + body[21:])},
		{"NUL in body", withChecksum(PrefixLive + body[:20] + "\x00" + body[21:])},
		{"high byte in body", withChecksum(PrefixLive + body[:20] + "\xff" + body[21:])},
		{"non-ASCII in body, same byte length", withChecksum(PrefixLive + "é" + body[2:])},
		{"live prefix swapped for test", PrefixTest + valid[len(PrefixLive):]},
	}
	for _, tt := range tests {
		if _, err := ParseCredential(tt.in); !errors.Is(err, ErrMalformedCredential) {
			t.Errorf("%s: ParseCredential(%q) err = %v, want ErrMalformedCredential", tt.name, tt.in, err)
		}
	}
}

func TestCredentialEnvironmentAndTokenID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		prefix, env string
	}{
		{PrefixLive, EnvLive},
		{PrefixTest, EnvTest},
		{PrefixAccessToken, ""},
		{PrefixRefreshToken, ""},
		{PrefixClientSecret, ""},
		{"", ""},
	}
	for _, tt := range tests {
		c := Credential{Prefix: tt.prefix, Selector: "0123456789abcdef"}
		if got := c.Environment(); got != tt.env {
			t.Errorf("Credential{Prefix: %q}.Environment() = %q, want %q", tt.prefix, got, tt.env)
		}
		if got := c.TokenID(); got != "tok_0123456789abcdef" {
			t.Errorf("TokenID() = %q, want tok_0123456789abcdef", got)
		}
	}
}

func TestNewCredentialDeterministic(t *testing.T) {
	t.Parallel()
	a, ca, err := NewCredential(seeded(7), PrefixTest)
	if err != nil {
		t.Fatal(err)
	}
	b, cb, err := NewCredential(seeded(7), PrefixTest)
	if err != nil {
		t.Fatal(err)
	}
	if a != b || ca != cb {
		t.Fatalf("same seed, different credentials: %q %+v and %q %+v", a, ca, b, cb)
	}
	if c, _, _ := NewCredential(seeded(8), PrefixTest); c == a {
		t.Fatalf("different seeds gave the same credential %q", c)
	}

	// Byte 7 maps to '7'; the whole random part is then predictable.
	s, c, err := NewCredential(bytes.NewReader(bytes.Repeat([]byte{7}, 200)), PrefixLive)
	if err != nil {
		t.Fatal(err)
	}
	random := strings.Repeat("7", selectorLen+secretLen)
	if want := withChecksum(PrefixLive + random); s != want {
		t.Fatalf("NewCredential = %q, want %q", s, want)
	}
	if c.Selector != random[:selectorLen] || c.Prefix != PrefixLive {
		t.Fatalf("credential %+v", c)
	}
}

func TestNewCredentialReaderError(t *testing.T) {
	t.Parallel()
	if _, _, err := NewCredential(bytes.NewReader(nil), PrefixLive); err == nil {
		t.Fatal("NewCredential with an empty reader: want an error")
	}
	// Only rejected bytes: the reader runs dry before 48 characters are drawn.
	if _, _, err := NewCredential(bytes.NewReader(bytes.Repeat([]byte{255}, 500)), PrefixLive); err == nil {
		t.Fatal("NewCredential with a reader of rejected bytes: want an error")
	}
}

func TestRandomBase62RejectsBiasedBytes(t *testing.T) {
	t.Parallel()
	// 248..255 would favour the first eight characters; they are skipped.
	in := []byte{248, 249, 250, 251, 252, 253, 254, 255, 0, 61, 62, 247}
	got, err := randomBase62(bytes.NewReader(in), 4)
	if err != nil {
		t.Fatal(err)
	}
	if got != "0z0z" {
		t.Fatalf("randomBase62 = %q, want 0z0z", got)
	}
}

func TestRandomBase62Distribution(t *testing.T) {
	t.Parallel()
	const draws = 62_000
	s, err := randomBase62(seeded(42), draws)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != draws {
		t.Fatalf("len = %d, want %d", len(s), draws)
	}
	counts := map[byte]int{}
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(base62, s[i]) < 0 {
			t.Fatalf("character %q at %d is not base62", s[i], i)
		}
		counts[s[i]]++
	}
	// Expected 1000 each; a uniform draw stays far inside these bounds.
	for i := 0; i < len(base62); i++ {
		if n := counts[base62[i]]; n < 800 || n > 1200 {
			t.Errorf("%q drawn %d times in %d, want about 1000", base62[i], n, draws)
		}
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	id, err := NewID(seeded(3), "acc_", 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 24 || !strings.HasPrefix(id, "acc_") || strings.Trim(id[4:], base62) != "" {
		t.Fatalf("NewID = %q, want acc_ + 20 base62 characters", id)
	}
}

func TestHashSecret(t *testing.T) {
	t.Parallel()
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" // SHA-256("abc")
	if got := HashSecret("abc"); got != want {
		t.Fatalf("HashSecret(abc) = %s, want %s", got, want)
	}
}

func FuzzParseCredential(f *testing.F) {
	for i, prefix := range allPrefixes {
		s, _, err := NewCredential(seeded(byte(i)), prefix)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(s + "0")
		f.Add(prefix)
	}
	body := strings.Repeat("Z", selectorLen+secretLen)
	for _, s := range []string{
		"", "tg_", "tg_live", "tg_live_", "tg_test_tg_live_",
		withChecksum(PrefixLive + body),
		withChecksum("tg_xx_" + body),
		withChecksum(PrefixAccessToken + strings.Repeat("é", 24)),
		PrefixRefreshToken + strings.Repeat("\x00", bodyLen),
		PrefixClientSecret + strings.Repeat("\xff", bodyLen),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCredential(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedCredential) {
				t.Fatalf("ParseCredential(%q) err = %v, want ErrMalformedCredential", s, err)
			}
			return
		}
		if len(s) != len(c.Prefix)+bodyLen || !strings.HasPrefix(s, c.Prefix) {
			t.Fatalf("accepted %q with prefix %q: wrong length %d", s, c.Prefix, len(s))
		}
		if c.Selector != s[len(c.Prefix):len(c.Prefix)+selectorLen] {
			t.Fatalf("accepted %q: selector %q", s, c.Selector)
		}
		again, err := ParseCredential(s)
		if err != nil || again != c {
			t.Fatalf("re-parse of accepted %q = %+v, %v; first %+v", s, again, err, c)
		}
		if withChecksum(s[:len(s)-checksumLen]) != s {
			t.Fatalf("accepted %q with a wrong checksum", s)
		}
	})
}

func TestMatchesHash(t *testing.T) {
	secret := "tg_live_" + strings.Repeat("a", 54)
	hash := HashSecret(secret)
	if !MatchesHash(secret, hash) {
		t.Fatal("a secret does not match its own hash")
	}
	for _, c := range []struct{ secret, hash string }{
		{secret + "x", hash},
		{secret, hash[:len(hash)-1]},
		{secret, strings.ToUpper(hash)},
		{secret, ""},
		{"", hash},
	} {
		if MatchesHash(c.secret, c.hash) {
			t.Errorf("MatchesHash(%q, %q) = true", c.secret, c.hash)
		}
	}
	if n := testing.AllocsPerRun(100, func() { MatchesHash(secret, hash) }); n != 0 {
		t.Errorf("MatchesHash allocates %v times", n)
	}
}
