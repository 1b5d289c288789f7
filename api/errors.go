package api

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/tollgate/tollgate/domain"
	"github.com/tollgate/tollgate/events"
)

// Error is the body of every management-API error.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"error"`
	Message string `json:"message"`
	Details any    `json:"details,omitempty"`
	// RetryAfter, when > 0, is sent as the Retry-After header (seconds).
	RetryAfter int   `json:"-"`
	cause      error `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }
func (e *Error) Unwrap() error { return e.cause }

// The two bodies of DESIGN.md that clients compare byte for byte.
var (
	errUnauthorized = &Error{Status: fiber.StatusUnauthorized, Code: "unauthorized", Message: "Invalid or missing API key"}
	errForbidden    = &Error{Status: fiber.StatusForbidden, Code: "forbidden", Message: "Insufficient permissions for this action"}
)

func invalidRequest(msg string, details ...domain.FieldProblem) *Error {
	e := &Error{Status: fiber.StatusBadRequest, Code: "invalid_request", Message: msg}
	if len(details) > 0 {
		e.Details = details
	}
	return e
}

func notFound(what string) *Error {
	return &Error{Status: fiber.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

func conflict(msg string) *Error {
	return &Error{Status: fiber.StatusConflict, Code: "conflict", Message: msg}
}

func unavailable(cause error) *Error {
	return &Error{Status: fiber.StatusServiceUnavailable, Code: "unavailable",
		Message: "The event log is unreachable; the change was not accepted. Retry later.", RetryAfter: 1, cause: cause}
}

// errorHandler turns any error a handler returns into the JSON error body.
func errorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		if oe := oauthErrorOf(c, err); oe != nil {
			if oe.status >= 500 {
				log.Error("oauth request failed", "method", c.Method(), "path", c.Path(), "request_id", requestID(c), "err", err)
			}
			return oe.write(c)
		}
		e := toAPIError(err)
		if requestID(c) == "" {
			// Errors raised before any middleware ran (an oversized body).
			c.Set(fiber.HeaderXRequestID, "req_"+strconv.FormatInt(time.Now().UnixNano(), 36))
		}
		if e.Status >= 500 {
			log.Error("request failed", "method", c.Method(), "path", c.Path(), "request_id", requestID(c), "err", err)
		}
		if e.RetryAfter > 0 {
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(e.RetryAfter))
		}
		return c.Status(e.Status).JSON(e)
	}
}

func toAPIError(err error) *Error {
	var apiErr *Error
	var verr *domain.ValidationError
	var ferr *fiber.Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &verr):
		return invalidRequest(verr.Error(), verr.Problems...)
	case errors.Is(err, domain.ErrForbidden):
		return errForbidden
	case errors.Is(err, domain.ErrNotFound):
		return notFound("resource")
	case errors.Is(err, events.ErrUnavailable), errors.Is(err, events.ErrConflict):
		return unavailable(err)
	case errors.As(err, &ferr):
		switch ferr.Code {
		case fiber.StatusRequestEntityTooLarge:
			return invalidRequest("request body is too large")
		case fiber.StatusNotFound:
			return &Error{Status: fiber.StatusNotFound, Code: "not_found", Message: "no such endpoint"}
		case fiber.StatusMethodNotAllowed:
			return &Error{Status: fiber.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "method not allowed on this endpoint"}
		}
		if ferr.Code < 500 {
			return &Error{Status: ferr.Code, Code: "invalid_request", Message: ferr.Message}
		}
	}
	return &Error{Status: fiber.StatusInternalServerError, Code: "internal_error", Message: "internal error", cause: err}
}
