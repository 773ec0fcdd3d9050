package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/startupwebapp/platform/platform/config"
	"github.com/startupwebapp/platform/platform/obs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// errUsage marks a command-line mistake; it exits with status 2.
var errUsage = errors.New("usage")

// exitCoder lets a subcommand choose its exit status (see `swa tenant`).
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	var ec exitCoder
	switch {
	case errors.As(err, &ec):
		return ec.ExitCode()
	case errors.Is(err, errUsage):
		return 2
	default:
		return 1
	}
}

// env is what every subcommand gets from main: its streams and environment.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
}

// loadConfig reads the configuration and builds the logger.
func (e env) loadConfig() (*config.Config, *slog.Logger, error) {
	cfg, err := config.Load(e.getenv)
	if err != nil {
		return nil, nil, err
	}
	return cfg, obs.NewLogger(e.stderr, cfg.LogFormat, cfg.LogLevel), nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	e := env{stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "swa",
		Short:         "The StartupWebApp platform: control plane, data plane and their tools",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return fmt.Errorf("%w: %v", errUsage, err)
	})
	root.AddCommand(
		versionCommand(e),
		healthcheckCommand(e),
		configCommand(e),
		migrateCommand(e),
		serveCommand(e),
		controlplaneCommand(e),
		devCommand(e),
		tenantCommand(getenv),
		dbserverCommand(getenv),
		signupCommand(getenv),
		planCommand(getenv),
	)
	err := root.ExecuteContext(ctx)
	if err != nil && isUsageError(err) {
		return fmt.Errorf("%w: %v (see swa --help)", errUsage, err)
	}
	return err
}

// isUsageError recognises cobra's own argument errors, which it returns as
// plain errors.
func isUsageError(err error) bool {
	if errors.Is(err, errUsage) {
		return false // already marked
	}
	msg := err.Error()
	for _, p := range []string{"unknown command", "accepts ", "requires at least", "requires at most", "unknown flag", "unknown shorthand"} {
		if strings.HasPrefix(msg, p) || strings.Contains(msg, " "+p) {
			return true
		}
	}
	return false
}

func versionCommand(e env) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(e.stdout, "swa", version)
			return err
		},
	}
}

func configCommand(e env) *cobra.Command {
	var reference bool
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the resolved configuration (secrets masked), or the reference of every option",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if reference {
				return config.WriteReference(e.stdout)
			}
			cfg, err := config.Load(e.getenv)
			if err != nil {
				return err
			}
			return cfg.WriteDump(e.stdout)
		},
	}
	cmd.Flags().BoolVar(&reference, "reference", false, "print the Markdown table of every SWA_* option")
	return cmd
}
