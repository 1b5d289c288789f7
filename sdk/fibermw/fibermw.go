// Package fibermw protects Fiber handlers with a [tollgate.Guard].
package fibermw

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	tollgate "github.com/tollgate/tollgate/sdk"
)

// LocalsKey is where the admitted request's tollgate.Verdict is stored
// (c.Locals(fibermw.LocalsKey)).
const LocalsKey = "tollgate.verdict"

// New returns a Fiber handler that lets through requests whose token
// (Authorization: Bearer, or X-API-Key) Tollgate finds VALID; others get
// {"error": <verdict>} with [tollgate.StatusFor]'s status, or 503 when
// Tollgate cannot be asked.
func New(g *tollgate.Guard) fiber.Handler {
	return func(c *fiber.Ctx) error {
		token := tokenOf(c)
		if token == "" {
			return c.Status(fiber.StatusUnauthorized).JSON(fiber.Map{"error": tollgate.VerdictNotFound})
		}
		// Fiber's strings alias its buffers; the guard may keep the token's
		// digest only, but copy anyway before it leaves the handler.
		v, err := g.Check(c.UserContext(), strings.Clone(token), c.IP())
		if err != nil {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"error": "unavailable"})
		}
		if !v.Valid {
			return c.Status(tollgate.StatusFor(v)).JSON(fiber.Map{"error": v.Code})
		}
		c.Locals(LocalsKey, v)
		return c.Next()
	}
}

func tokenOf(c *fiber.Ctx) string {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, rest, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest)
		}
		return ""
	}
	return strings.TrimSpace(c.Get("X-API-Key"))
}
