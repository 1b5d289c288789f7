package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"

	"github.com/gofiber/fiber/v2"
)

// limitBody refuses bodies over the configured limit.
func (a *API) limitBody(c *fiber.Ctx) error {
	if len(c.Body()) > a.cfg.BodyLimit {
		return invalidRequest(fmt.Sprintf("request body is too large: the limit is %d bytes", a.cfg.BodyLimit))
	}
	return c.Next()
}

// decodeJSON reads the request body strictly: JSON content type, one object,
// no unknown fields, nothing after it.
func decodeJSON(c *fiber.Ctx, v any) error {
	ct := c.Get(fiber.HeaderContentType)
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" || err != nil || mt != fiber.MIMEApplicationJSON {
		return invalidRequest("Content-Type must be application/json")
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return invalidRequest("request body is required")
	}
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
