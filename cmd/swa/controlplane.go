package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/api"
	"github.com/startupwebapp/platform/platform/config"
)

func controlplaneCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "controlplane",
		Short: "Run the control plane: the admin API that provisions and manages tenants",
		Long: `Run the control plane. It migrates the platform database, registers the tenant database
server of SWA_TENANT_DB_ADMIN_URL, and serves the admin API under /v1 on
SWA_CONTROLPLANE_ADDR (bearer tokens; SWA_ADMIN_TOKEN is the bootstrap token).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, log, err := e.loadConfig()
			if err != nil {
				return err
			}
			log.Info("control plane starting", "version", version, "config", cfg.Dump())
			cp, err := newControlPlane(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			if err := cp.listen(); err != nil {
				cp.close()
				return err
			}
			return cp.serve(cmd.Context())
		},
	}
}

// controlPlane is `swa controlplane`: the admin API over the provisioner.
type controlPlane struct {
	cfg  *config.Config
	log  *slog.Logger
	core *controlPlaneCore
	api  *api.Server
	ln   net.Listener
}

func newControlPlane(ctx context.Context, cfg *config.Config, log *slog.Logger) (*controlPlane, error) {
	core, err := openControlPlaneCore(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	srv, err := api.New(ctx, api.Options{
		Provision:      core.prov,
		Log:            log,
		BootstrapToken: cfg.AdminToken,
		TrustedProxies: cfg.TrustedProxies,
		RequestTimeout: cfg.RequestTimeout,
	})
	if err != nil {
		core.Close()
		return nil, err
	}
	return &controlPlane{cfg: cfg, log: log, core: core, api: srv}, nil
}

func (cp *controlPlane) listen() (err error) {
	if cp.ln, err = net.Listen("tcp", cp.cfg.ControlPlaneAddr); err != nil {
		return fmt.Errorf("control plane: %w", err)
	}
	return nil
}

// serve answers until ctx ends, then lets in-flight requests and running
// operations finish within SWA_SHUTDOWN_TIMEOUT.
func (cp *controlPlane) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- cp.api.App().Listener(cp.ln) }()
	cp.log.Info("control plane serving", "addr", cp.ln.Addr().String())
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("control plane: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), cp.cfg.ShutdownTimeout)
	defer cancel()
	if serr := cp.api.Shutdown(sctx); serr != nil {
		cp.log.Warn("control plane shutdown", "err", serr)
	}
	cp.close()
	cp.log.Info("control plane stopped")
	return err
}

func (cp *controlPlane) close() { cp.core.Close() }
