package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/sites"
)

// rawBody is a request body sent as it is, not as JSON.
type rawBody struct {
	contentType string
	data        []byte
}

// siteDeployTimeout is how long `swa tenant site deploy` waits: the
// server's deploy deadline and the upload.
const siteDeployTimeout = 5 * time.Minute

// siteView and siteVersionView are what the CLI reads of a site.
type siteView struct {
	Mode           string            `json:"mode"`
	Domain         *string           `json:"domain"`
	CurrentVersion *int              `json:"current_version"`
	Versions       []siteVersionView `json:"versions"`
}

type siteVersionView struct {
	Number    int       `json:"number"`
	Ready     bool      `json:"ready"`
	Current   bool      `json:"current"`
	Files     int       `json:"files"`
	Bytes     int64     `json:"bytes"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"created_at"`
}

// siteCmd is `swa tenant site deploy|list|rollback|mode|delete`.
func (t *tenantCLI) siteCmd() *cobra.Command {
	cmd := group("site", "The tenant's own frontend: deploy, list, roll back, choose where it is served", `A tenant with a frontend of its own (a static site) deploys it to the platform.
Each deploy is a numbered version, served whole or not at all; the newest
10 are kept for rollback.`)
	base := func(slug string) string { return "/v1/tenants/" + url.PathEscape(slug) + "/site" }

	deploy := &cobra.Command{
		Use:   "deploy SLUG DIR|BUNDLE.tar.gz",
		Short: "Deploy a directory or a .tar.gz bundle and serve it",
		Long: `Deploy a static site: a directory (packed as it is: regular files only, paths
relative to it) or a .tar.gz bundle. It is served once every file is stored;
a deploy cut off is completed by running the same command again.`,
		Args: nArgs(2, 2, "SLUG DIR|BUNDLE.tar.gz"),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readBundleArg(args[1])
			if err != nil {
				return err
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			long := *c
			long.http = &http.Client{Timeout: siteDeployTimeout}
			raw, _, err := long.do(cmd.Context(), "POST", base(args[0])+"/versions", rawBody{"application/gzip", data})
			if err != nil {
				return err
			}
			if t.json {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			var v siteVersionView
			if err := json.Unmarshal(raw, &v); err != nil {
				return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: site version %d served (%d files, %d bytes)\n", args[0], v.Number, v.Files, v.Bytes)
			return err
		},
	}

	list := &cobra.Command{
		Use: "list SLUG", Short: "Show where the site is served and its versions", Args: nArgs(1, 1, "SLUG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "GET", base(args[0]), nil)
			if err != nil {
				return err
			}
			return t.printSite(cmd, raw)
		},
	}

	rollback := &cobra.Command{
		Use: "rollback SLUG VERSION", Short: "Serve a kept version again, at once", Args: nArgs(2, 2, "SLUG VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return usageError("VERSION: want a version number (see swa tenant site list)")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			raw, _, err := c.do(cmd.Context(), "POST", base(args[0])+"/rollback", map[string]int{"version": n})
			if err != nil {
				return err
			}
			return t.printSite(cmd, raw)
		},
	}

	var domain string
	mode := &cobra.Command{
		Use:   "mode SLUG replace|domain",
		Short: "Serve the site on every host of the tenant (replace) or on one of its domains only (domain --domain HOST)",
		Long: `replace: the site is served on every host of the tenant, in place of the built-in
storefront. domain: only on --domain, one of the tenant's domains; its other
hosts keep the storefront, and the site's origin may call the tenant's API.`,
		Args: nArgs(2, 2, "SLUG replace|domain"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := t.client()
			if err != nil {
				return err
			}
			body := map[string]string{"mode": args[1]}
			if domain != "" {
				body["domain"] = domain
			}
			raw, _, err := c.do(cmd.Context(), "PUT", base(args[0])+"/mode", body)
			if err != nil {
				return err
			}
			return t.printSite(cmd, raw)
		},
	}
	mode.Flags().StringVar(&domain, "domain", "", "the hostname to serve the site on (mode domain)")

	del := &cobra.Command{
		Use: "delete SLUG VERSION", Short: "Delete a version that is not served", Args: nArgs(2, 2, "SLUG VERSION"),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return usageError("VERSION: want a version number (see swa tenant site list)")
			}
			c, err := t.client()
			if err != nil {
				return err
			}
			if _, _, err := c.do(cmd.Context(), "DELETE", base(args[0])+"/versions/"+strconv.Itoa(n), nil); err != nil {
				return err
			}
			if t.json {
				return nil
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted site version %d of %s\n", n, args[0])
			return err
		},
	}
	cmd.AddCommand(deploy, list, rollback, mode, del)
	return cmd
}

// readBundleArg packs a directory, or reads a .tar.gz file as it is.
func readBundleArg(p string) ([]byte, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, usageError("%v", err)
	}
	if !info.IsDir() {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, usageError("%v", err)
		}
		return b, nil
	}
	var buf bytes.Buffer
	if err := sites.Pack(p, &buf); err != nil {
		return nil, usageError("%v", err)
	}
	return buf.Bytes(), nil
}

func (t *tenantCLI) printSite(cmd *cobra.Command, raw []byte) error {
	if t.json {
		return printJSON(cmd.OutOrStdout(), raw)
	}
	var s siteView
	if err := json.Unmarshal(raw, &s); err != nil {
		return &cliError{code: exitFailure, msg: "control plane: unexpected answer"}
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	where := "every host of the tenant"
	if s.Domain != nil {
		where = *s.Domain + " only"
	}
	fmt.Fprintf(w, "mode %s: served on %s\n", s.Mode, where)
	if len(s.Versions) == 0 {
		fmt.Fprintln(w, "no versions deployed")
		return w.Flush()
	}
	fmt.Fprintln(w, "VERSION\tSTATUS\tFILES\tBYTES\tDEPLOYED\tBY")
	for _, v := range s.Versions {
		status := "ready"
		if !v.Ready {
			status = "pending (deploy again to finish)"
		}
		if v.Current {
			status += " (served)"
		}
		fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%s\t%s\n", v.Number, status, v.Files, v.Bytes, v.CreatedAt.Format(time.RFC3339), v.Actor)
	}
	return w.Flush()
}

// openSiteBlobs opens the site file backend of SWA_SITES_BACKEND on db (the
// platform database as this process reads it).
func openSiteBlobs(ctx context.Context, cfg *config.Config, db sites.DB) (sites.Blobs, error) {
	if cfg.SitesBackend != "s3" {
		return sites.NewDBBlobs(db), nil
	}
	if cfg.SitesS3Bucket == "" {
		return nil, fmt.Errorf("config: SWA_SITES_S3_BUCKET: required when SWA_SITES_BACKEND is s3")
	}
	client, err := sites.NewS3Client(ctx, cfg.SitesS3Endpoint)
	if err != nil {
		return nil, err
	}
	return sites.NewS3Blobs(client, cfg.SitesS3Bucket, cfg.SitesS3Prefix), nil
}
