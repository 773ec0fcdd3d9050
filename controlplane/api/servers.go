package api

import (
	"errors"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"github.com/startupwebapp/platform/controlplane/registry"
)

// kindMove moves a tenant's database to another database server.
const kindMove = "move"

func (s *Server) serverRoutes(v1 fiber.Router) {
	v1.Get("/db-servers", s.listDBServers)
	v1.Post("/db-servers", s.registerDBServer)
	v1.Post("/tenants/:slug/move", s.moveTenant)
	v1.Get("/tenants/:slug/move", s.getMove)
}

// dbServerList is the answer of GET /v1/db-servers.
type dbServerList struct {
	DBServers []registry.DBServer `json:"db_servers"`
}

func (s *Server) listDBServers(c *fiber.Ctx) error {
	servers, err := s.reg.DBServers(c.UserContext())
	if err != nil {
		return err
	}
	if servers == nil {
		servers = []registry.DBServer{}
	}
	return c.JSON(dbServerList{DBServers: servers})
}

// registerDBServer registers a database server (or updates the one of that
// name) once its admin connection string logs in with the rights to create
// tenant roles and databases. The connection string goes to the secrets
// store; neither the answer nor the audit entry holds it.
func (s *Server) registerDBServer(c *fiber.Ctx) error {
	var spec registry.DBServerSpec
	if err := decodeJSON(c, &spec); err != nil {
		return err
	}
	ctx := c.UserContext()
	_, err := s.reg.DBServerByName(ctx, spec.Name)
	existed := err == nil
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		return err
	}
	sv, err := s.prov.RegisterDBServer(ctx, spec)
	if err != nil {
		return err
	}
	if err := s.reg.Audit(ctx, actor(c), "db_server.register", 0, nil, sv); err != nil {
		return err
	}
	status := http.StatusCreated
	if existed {
		status = http.StatusOK
	}
	return c.Status(status).JSON(sv)
}

type moveRequest struct {
	ToServer string `json:"to_server"`
}

// moveTenant records a move of the tenant to another server and queues it;
// a control plane that restarts resumes it from its record.
func (s *Server) moveTenant(c *fiber.Ctx) error {
	var req moveRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if req.ToServer == "" {
		return invalid("to_server", "required: the name of a registered database server")
	}
	if _, err := s.tenant(c); err != nil {
		return err
	}
	if err := s.admit(c); err != nil {
		return err
	}
	ctx := c.UserContext()
	if _, err := s.prov.PlanMove(ctx, c.Params("slug"), req.ToServer, actor(c)); err != nil {
		s.work.release()
		return err
	}
	t, err := s.reg.Tenant(ctx, c.Params("slug"))
	if err != nil {
		s.work.release()
		return err
	}
	return s.queue(ctx, c, kindMove, t.ID, t.Slug, &t)
}

func (s *Server) getMove(c *fiber.Ctx) error {
	t, err := s.tenant(c)
	if err != nil {
		return err
	}
	m, err := s.reg.TenantMove(c.UserContext(), t.ID)
	if err != nil {
		return err
	}
	return c.JSON(m)
}
