package api

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseBasic: parseBasic never panics, and what it accepts is exactly
// what RFC 6749 §2.3.1 encoding produces: encoding the result again and
// parsing that gives the same client_id and secret.
//
//	go test ./api/ -run '^$' -fuzz FuzzParseBasic -fuzztime 30s
func FuzzParseBasic(f *testing.F) {
	b64 := func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, seed := range []string{
		b64("client:secret"),
		b64("a%3Ab:secret"),                 // a:b
		b64("a:b:c"),                        // secret "b:c"
		b64("ops%40example.com+1%25:p%20w"), // ops@example.com 1% / "p w"
		b64("100% off:x"),                   // raw % is not form encoding
		b64("%zz:x"),
		b64(":secret"),
		b64("client:"),
		b64("nocolon"),
		b64("é%C3%A9:ü"),
		b64("a\x00b:c\xff"),
		"Basic " + base64.RawStdEncoding.EncodeToString([]byte("client:secret")), // no padding
		"basic " + base64.StdEncoding.EncodeToString([]byte("x:y")),
		"BASIC  " + base64.StdEncoding.EncodeToString([]byte("x:y")),
		"Basic",
		"Basic ",
		"Basic !!!!",
		"Bearer tg_live_x",
		"Basic " + strings.Repeat("A", maxBasicHeader),
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		id, secret, err := parseBasic(header)
		if err != nil {
			if id != "" || secret != "" {
				t.Fatalf("error %v with id %q secret %q", err, id, secret)
			}
			return
		}
		if id == "" || secret == "" {
			t.Fatalf("accepted an empty part: %q %q", id, secret)
		}
		again := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
		id2, secret2, err := parseBasic(again)
		if len(again) <= maxBasicHeader && (err != nil || id2 != id || secret2 != secret) {
			t.Fatalf("round trip of %q/%q: %q/%q %v", id, secret, id2, secret2, err)
		}
	})
}

// FuzzParseForm: parseForm never panics; it accepts a body exactly when
// url.ParseQuery does and no parameter is repeated, and then holds every
// non-empty parameter with its one value.
//
//	go test ./api/ -run '^$' -fuzz FuzzParseForm -fuzztime 30s
func FuzzParseForm(f *testing.F) {
	for _, seed := range []string{
		"grant_type=client_credentials",
		"grant_type=client_credentials&scope=vps%3Aread+vps%3Awrite",
		"scope=a&scope=b",
		"scope=a&scope=a",
		"scope=&scope=a",
		"scope=",
		"scope",
		"=x",
		"a=1;b=2",
		"a=%zz",
		"a=%",
		"client_id=ops%40example.com+1%25&client_secret=p%3Aw",
		"&&&",
		"a=1&&b=2",
		"%C3%A9=%C3%BC",
		"a=\x00&b=\xff",
		"A=1&a=2",
		strings.Repeat("a=1&", maxFormParams),
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, err := parseForm(body)
		want, werr := url.ParseQuery(body)
		repeated := false
		for _, v := range want {
			repeated = repeated || len(v) > 1
		}
		tooMany := strings.Count(body, "&") >= maxFormParams
		switch {
		case err == nil && (werr != nil || repeated || tooMany):
			t.Fatalf("accepted %q (ParseQuery: %v, repeated %v)", body, werr, repeated)
		case err != nil && werr == nil && !repeated && !tooMany:
			t.Fatalf("refused %q: %v", body, err)
		case err != nil:
			if utf8.ValidString(body) && !utf8.ValidString(err.Error()) {
				t.Fatalf("error text is not UTF-8: %q", err.Error())
			}
			return
		}
		for k, v := range want {
			if v[0] == "" {
				if _, ok := got[k]; ok {
					t.Fatalf("empty %q kept", k)
				}
				continue
			}
			if len(got[k]) != 1 || got[k][0] != v[0] {
				t.Fatalf("%q: got %q, want %q", k, got[k], v)
			}
		}
		if len(got) > len(want) {
			t.Fatalf("extra parameters: %v vs %v", got, want)
		}
	})
}
