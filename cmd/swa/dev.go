package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/controlplane/provision"
	"github.com/startupwebapp/platform/platform/directory"
	"github.com/startupwebapp/platform/platform/obs"
	"github.com/startupwebapp/platform/platform/secrets"
	"github.com/startupwebapp/platform/tenant/account"
	"github.com/startupwebapp/platform/tenant/admin"
)

// demoTenant is one of the tenants `swa dev` provisions on first start.
type demoTenant struct {
	slug, name, forkOf string
	domains            []string
	frontend           string // origin of the tenant's frontend
	branding           directory.Branding
}

// demoTenants: startupwebapp owns localhost so the StartupWebApp frontend
// at http://localhost:8080 works against http://localhost:8000 unchanged;
// the two forks show onboarding a fork of it.
var demoTenants = []demoTenant{
	{slug: "startupwebapp", name: "StartupWebApp", domains: []string{"localhost"}, frontend: "http://localhost:8080",
		branding: directory.Branding{Tagline: "Office supplies that hold everything together.", PrimaryColor: "#2457a6", AccentColor: "#f2b705",
			ContactEmail: "hello@startupwebapp.localhost", ContactPhone: "1-800-123-4567"}},
	{slug: "healthtech", name: "HealthTech", forkOf: "startupwebapp", frontend: "http://healthtech.localhost:8080",
		branding: directory.Branding{ShopName: "HealthTech Supply", Tagline: "Clinic and office essentials, shipped fast.", PrimaryColor: "#0b7a5c", AccentColor: "#7fd1b9",
			ContactEmail: "care@healthtech.localhost", ContactPhone: "1-800-555-0142",
			FooterLinks: []directory.FooterLink{{Label: "Clinic accounts", URL: "/contact"}}}},
	{slug: "fintech", name: "FinTech", forkOf: "startupwebapp", frontend: "http://fintech.localhost:8080",
		branding: directory.Branding{ShopName: "FinTech Store", Tagline: "Tools for tidy books and tidier desks.", PrimaryColor: "#4b2a86", AccentColor: "#ff8a3d",
			ContactEmail: "desk@fintech.localhost", ContactPhone: "1-800-555-0199"}},
}

func devCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "dev",
		Short: "Run control plane and data plane in one process with three demo tenants",
		Long: `Run the whole platform locally: the control plane on 127.0.0.1:8001 and the data plane
on 127.0.0.1:8000, against the local stack (eval "$(deploy/dev/stack env)" first, or use
make dev). On first start it generates a master key and an admin token under .dev/ and
provisions the tenants startupwebapp (also on localhost), healthtech and fintech; later starts
reuse them. It writes .dev/swa.env, which deploy/dev/stack env prints, so swa tenant ...
works from a second terminal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), e, nil)
		},
	}
}

// devDefaults are the settings `swa dev` uses unless the environment says
// otherwise: loopback listeners and the dev environment.
var devDefaults = map[string]string{
	"SWA_ENV":               "dev",
	"SWA_HTTP_ADDR":         "127.0.0.1:8000",
	"SWA_ADMIN_ADDR":        "127.0.0.1:9100",
	"SWA_CONTROLPLANE_ADDR": "127.0.0.1:8001",
	// The bare localhost is the startupwebapp tenant's (the original
	// frontend talks to it), so the platform site has www only.
	"SWA_PLATFORM_HOSTS": "www.localhost",
}

// devURLs are the base URLs of a running `swa dev`.
type devURLs struct {
	Data, Admin, Control string
	Site                 string // the platform site (sign-up)
}

// runDev runs `swa dev` until ctx ends. ready, when set, receives the base
// URLs once the demo tenants are up.
func runDev(ctx context.Context, e env, ready func(devURLs)) error {
	dir := e.getenv("SWA_DEV_DIR")
	if dir == "" {
		dir = ".dev"
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	masterKey, err := readOrCreate(filepath.Join(dir, "master.key"), secrets.GenerateMasterKey)
	if err != nil {
		return err
	}
	adminToken, err := readOrCreate(filepath.Join(dir, "admin.token"), func() string { return "swa_dev_" + randomHex(24) })
	if err != nil {
		return err
	}
	generated := map[string]string{"SWA_MASTER_KEY": masterKey, "SWA_ADMIN_TOKEN": adminToken}
	base := e.getenv
	e.getenv = func(k string) string {
		if v := base(k); v != "" {
			return v
		}
		if v, ok := generated[k]; ok {
			// A _FILE variant from the environment wins over the generated value.
			if base(k+"_FILE") != "" {
				return ""
			}
			return v
		}
		return devDefaults[k]
	}
	cfg, log, err := e.loadConfig()
	if err != nil {
		return err
	}
	// The platform site runs in-process in front of the data plane (with
	// the host match the forwarding would use), so nothing is forwarded.
	cfg.PlatformSiteURL = ""
	log.Info("swa dev starting", "version", version, "config", cfg.Dump())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var urls devURLs
	cp, err := newControlPlane(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := cp.listen(); err != nil {
		cp.close()
		return err
	}
	dp, err := newDataPlane(ctx, cfg, log, obs.NewRegistry())
	if err != nil {
		cp.ln.Close()
		cp.close()
		return err
	}
	if err := dp.listen(); err != nil {
		cp.ln.Close()
		cp.close()
		dp.close(context.Background())
		return err
	}

	// The platform site answers on the data plane's port too, so the
	// sign-up journey runs on http://www.localhost:8000 and its shops on
	// http://{slug}.localhost:8000.
	_, dataPort, _ := net.SplitHostPort(dp.ln.Addr().String())
	siteURL := "http://" + platformHosts(cfg)[0] + ":" + dataPort
	tenantURL := func(slug string) string { return "http://" + slug + "." + cfg.BaseDomain + ":" + dataPort }
	if err := cp.startSite(ctx, siteURL, tenantURL, false); err != nil {
		cp.ln.Close()
		cp.close()
		dp.ln.Close()
		dp.adminLn.Close()
		dp.close(context.Background())
		return err
	}
	dsrv := dp.app.Server()
	dsrv.Handler = cp.site.Front(dsrv.Handler)
	urls.Site = siteURL

	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() { errs[0] = cp.serve(ctx); cancel() })
	wg.Go(func() { errs[1] = dp.serve(ctx); cancel() })

	urls.Data = "http://" + dp.ln.Addr().String()
	urls.Admin = "http://" + dp.adminLn.Addr().String()
	urls.Control = "http://" + cp.ln.Addr().String()

	if err := ensureDemoTenants(ctx, cp.core, dp.ln.Addr()); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	// The data plane hears of new tenants by NOTIFY; reload now so every
	// demo tenant answers before the banner says so.
	if err := dp.dir.Refresh(ctx); err != nil {
		cancel()
		wg.Wait()
		return fmt.Errorf("dev: %w", err)
	}
	if err := writeDevEnv(ctx, dir, urls.Control, adminToken, masterKey, cp.core.secrets); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	ownerPassword, err := readOrCreate(filepath.Join(dir, "staff-owner.password"), func() string { return "Dev-" + randomHex(8) + "!" })
	if err == nil {
		err = ensureDemoOwners(ctx, dp, ownerPassword)
	}
	if err != nil {
		cancel()
		wg.Wait()
		return err
	}
	printDevBanner(e, cfg.BaseDomain, dp.ln.Addr(), urls.Control, urls.Site, dir)
	printBackOffice(e, cfg.BaseDomain, dp.ln.Addr(), ownerPassword)
	if ready != nil {
		ready(urls)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ensureDemoTenants provisions the demo tenants, resuming any left
// unfinished, and gives each a Stripe webhook signing secret for local tests.
func ensureDemoTenants(ctx context.Context, core *controlPlaneCore, dataAddr net.Addr) error {
	_, port, _ := net.SplitHostPort(dataAddr.String())
	for _, d := range demoTenants {
		req := provision.CreateRequest{
			Slug:        d.slug,
			DisplayName: d.name,
			ForkOf:      d.forkOf,
			Domains:     d.domains,
			Origins:     []string{d.frontend, strings.Replace(d.frontend, ":8080", ":"+port, 1)},
			Settings: directory.Settings{
				FrontendOrigin: d.frontend,
				FromAddress:    d.name + " <hello@" + d.slug + ".localhost>",
				Branding:       &d.branding,
			},
		}
		tn, err := core.prov.Ensure(ctx, req, "swa dev")
		if err != nil {
			return fmt.Errorf("dev: tenant %s: %w", d.slug, err)
		}
		// State kept from before the storefront had branding gets it now.
		if tn.Settings.Branding == nil {
			if _, err := core.prov.UpdateSettings(ctx, d.slug, provision.SettingsPatch{Branding: &d.branding}, "swa dev"); err != nil {
				return fmt.Errorf("dev: tenant %s: branding: %w", d.slug, err)
			}
		}
		status, err := core.prov.SecretsStatus(ctx, d.slug)
		if err != nil {
			return fmt.Errorf("dev: tenant %s: %w", d.slug, err)
		}
		if !status.StripeWebhookSecret {
			whsec := "whsec_" + randomHex(24)
			if _, err := core.prov.SetSecrets(ctx, d.slug, provision.SecretsInput{StripeWebhookSecret: &whsec}, "swa dev"); err != nil {
				return fmt.Errorf("dev: tenant %s: %w", d.slug, err)
			}
		}
	}
	return nil
}

// demoOwnerEmail is the back-office owner `swa dev` creates on a demo tenant.
func demoOwnerEmail(slug string) string { return "owner@" + slug + ".localhost" }

// ensureDemoOwners gives every demo tenant a back-office owner with the dev
// password, unless it has one with that address already.
func ensureDemoOwners(ctx context.Context, dp *dataPlane, password string) error {
	hasher := account.NewHasher(account.DefaultArgon2)
	for _, d := range demoTenants {
		t, _ := dp.dir.Lookup(d.slug + "." + dp.cfg.BaseDomain)
		if t == nil {
			return fmt.Errorf("dev: tenant %s is not in the directory", d.slug)
		}
		err := dp.pools.Do(ctx, t, func(c *pgxpool.Conn) error {
			return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				_, err := admin.CreateOwner(ctx, tx, hasher, demoOwnerEmail(d.slug), d.name+" Owner", password, "swa dev")
				return err
			})
		})
		if err != nil {
			return fmt.Errorf("dev: back-office owner of %s: %w", d.slug, err)
		}
	}
	return nil
}

// printBackOffice prints each demo tenant's back-office address and login.
func printBackOffice(e env, baseDomain string, dataAddr net.Addr, password string) {
	_, port, _ := net.SplitHostPort(dataAddr.String())
	fmt.Fprintf(e.stdout, "  back office (staff sign-in; the password is in staff-owner.password of the dev directory):\n")
	for _, d := range demoTenants {
		fmt.Fprintf(e.stdout, "  %-14s http://%s.%s:%s/admin/  %s  %s\n", d.slug, d.slug, baseDomain, port, demoOwnerEmail(d.slug), password)
	}
	fmt.Fprintln(e.stdout)
}

// writeDevEnv writes the export lines a second terminal needs; deploy/dev/stack
// env prints them.
func writeDevEnv(ctx context.Context, dir, controlURL, token, masterKey string, store secrets.Store) error {
	b, err := secrets.LoadBundle(ctx, store, secrets.TenantSecretName(demoTenants[0].slug))
	if err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	lines := []string{
		"# Written by swa dev: the local control plane and the startupwebapp tenant's webhook secret.",
		"export SWA_CONTROLPLANE_URL='" + controlURL + "'",
		"export SWA_ADMIN_TOKEN='" + token + "'",
		"export SWA_MASTER_KEY='" + masterKey + "'",
		"export SWA_STRIPE_WEBHOOK_SECRET='" + b.StripeWebhookSecret + "'",
	}
	path := filepath.Join(dir, "swa.env")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return fmt.Errorf("dev: %w", err)
	}
	return nil
}

func printDevBanner(e env, baseDomain string, dataAddr net.Addr, controlURL, siteURL, dir string) {
	_, port, _ := net.SplitHostPort(dataAddr.String())
	fmt.Fprintf(e.stdout, "\nStartupWebApp platform is running.\n\n")
	for _, d := range demoTenants {
		urls := []string{}
		for _, h := range d.domains {
			urls = append(urls, "http://"+h+":"+port)
		}
		urls = append(urls, "http://"+d.slug+"."+baseDomain+":"+port)
		fmt.Fprintf(e.stdout, "  %-14s %s\n", d.slug, strings.Join(urls, "  "))
	}
	fmt.Fprintf(e.stdout, "\n  platform site  %s  (sign up a shop of your own)\n", siteURL)
	fmt.Fprintf(e.stdout, "\n  control plane  %s  (admin token and URL in %s/swa.env;\n", controlURL, dir)
	fmt.Fprintf(e.stdout, "                 in another terminal: eval \"$(deploy/dev/stack env)\" && bin/swa tenant list)\n\n")
}

// readOrCreate returns the trimmed contents of path, creating it (mode 0600)
// with gen() when it does not exist.
func readOrCreate(path string, gen func() string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("dev: %w", err)
	}
	v := gen()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("dev: %w", err)
	}
	return v, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
