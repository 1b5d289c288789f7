package api

import "testing"

// The fast strict decoder relies on a go-json option flag that has no
// public name; an upgrade that moves it must show here, not as a silent
// fall back to the slower Decoder.
func TestStrictUnmarshalFlagHolds(t *testing.T) {
	if !strictUnmarshal {
		t.Fatal("go-json's DisallowUnknownFields flag moved: update goccyDisallowUnknownFields")
	}
	var v struct {
		Token string `json:"token"`
	}
	for body, ok := range map[string]bool{
		`{"token":"a"}`:           true,
		` {"token":"a"} `:         true,
		`{"token":"a","x":1}`:     false,
		`{"token":"a"} {}`:        false,
		`{"token":"a"`:            false,
		`{"token":1}`:             false,
		`[{"token":"a"}]`:         false,
		`{"token":"a"}garbage`:    false,
		`{"token":"\u00e9"}`:      true,
		`{"token":"a\u0000b"}`:    true,
		`{"token":"a","token":2}`: false,
	} {
		if err := decodeFast([]byte(body), &v); (err == nil) != ok {
			t.Errorf("decodeFast(%s) = %v, want ok=%v", body, err, ok)
		}
	}
}
