package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"

	gojson "github.com/goccy/go-json"
	"github.com/gofiber/fiber/v2"
)

// limitBody refuses bodies over the configured limit, and bodies with a
// Content-Encoding: decoding one would happen before any limit applies (a
// few hundred kilobytes of gzip unpack to gigabytes), so bodies are taken
// only as sent.
func (a *API) limitBody(c *fiber.Ctx) error {
	body := requestBody(c)
	if len(body) > 0 {
		if enc := bytes.TrimSpace(c.Request().Header.Peek(fiber.HeaderContentEncoding)); len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity")) {
			return invalidRequest("Content-Encoding is not supported on request bodies: send the body uncompressed")
		}
	}
	if len(body) > a.cfg.BodyLimit {
		return invalidRequest(fmt.Sprintf("request body is too large: the limit is %d bytes", a.cfg.BodyLimit))
	}
	return c.Next()
}

// requestBody is the body as sent; limitBody has refused encoded ones.
// Unlike Fiber's Ctx.Body it decodes nothing and copies nothing, so it is
// valid only while the request is handled: what outlives the request must
// be copied from it (decoding JSON or a form does).
func requestBody(c *fiber.Ctx) []byte { return c.Request().Body() }

// decodeJSON reads the request body strictly: JSON content type, one object,
// no unknown fields, nothing after it.
//
// A well-formed body is decoded by go-json, several times faster than
// encoding/json on the request path. Anything go-json refuses is decoded
// again by encoding/json, which has the last word: its verdict and its
// error messages are the contract.
func decodeJSON(c *fiber.Ctx, v any) error {
	ct := c.Get(fiber.HeaderContentType)
	if ct != fiber.MIMEApplicationJSON {
		mt, _, err := mime.ParseMediaType(ct)
		if ct == "" || err != nil || mt != fiber.MIMEApplicationJSON {
			return invalidRequest("Content-Type must be application/json")
		}
	}
	body := requestBody(c)
	if len(bytes.TrimSpace(body)) == 0 {
		return invalidRequest("request body is required")
	}
	if decodeFast(body, v) == nil {
		return nil
	}
	reflect.ValueOf(v).Elem().SetZero() // nothing of the fast attempt remains
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidRequest(describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return invalidRequest("request body must hold a single JSON object")
	}
	return nil
}

// goccyDisallowUnknownFields is go-json's decoder.DisallowUnknownFieldsOption
// (v0.12), which its Unmarshal has no public option for; its Decoder does,
// but allocates a stream buffer per call. strictUnmarshal is checked at
// start: if an upgrade moved the flag, the Decoder is used instead.
const goccyDisallowUnknownFields = 1 << 4

func strictOption(o *gojson.DecodeOption) { o.Flags |= goccyDisallowUnknownFields }

var strictUnmarshal = func() bool {
	var v struct {
		A string `json:"a"`
	}
	in := []byte(`{"a":"copied"}`)
	if gojson.UnmarshalWithOption(in, &v, strictOption) != nil || v.A != "copied" {
		return false
	}
	copy(in, `{"a":"CHANGED"}`) // strings must not alias the input
	return v.A == "copied" && gojson.UnmarshalWithOption([]byte(`{"a":"x","b":1}`), &v, strictOption) != nil
}()

func decodeFast(body []byte, v any) error {
	if strictUnmarshal {
		return gojson.UnmarshalWithOption(body, v, strictOption)
	}
	dec := gojson.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if rest := body[dec.InputOffset():]; len(bytes.TrimSpace(rest)) != 0 {
		return errTrailingData
	}
	return nil
}

var errTrailingData = errors.New("data after the JSON value")

func describeJSONError(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("malformed JSON at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
		}
		return fmt.Sprintf("request body must be %s", typ.Type)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: unexpected end of input"
	}
	msg := err.Error()
	if len(msg) > 12 && msg[:12] == "json: unknow" {
		return "unknown field " + msg[len("json: unknown field "):]
	}
	return "malformed JSON: " + msg
}
