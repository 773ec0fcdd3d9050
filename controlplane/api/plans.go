package api

import (
	"github.com/gofiber/fiber/v2"
)

// Plans and quotas: GET /v1/plans lists the plans with their limits and
// prices (a tenant's plan is changed by PATCH /v1/tenants/{slug}, audited);
// GET /v1/tenants/{slug}/quota is the tenant's plan and the months it went
// past a quota that is flagged rather than refused (orders_per_month).

func (s *Server) listPlans(c *fiber.Ctx) error {
	plans, err := s.prov.Registry().Plans(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"plans": plans})
}

func (s *Server) getQuota(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	rg := s.prov.Registry()
	plan, err := rg.Plan(c.UserContext(), t.Plan)
	if err != nil {
		return err
	}
	flags, err := rg.QuotaFlags(c.UserContext(), t.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"plan": t.Plan, "limits": plan, "flags": flags})
}
