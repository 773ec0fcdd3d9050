// Command image builds the swa container image without a Docker daemon and
// without pulling a base image: the base layer is made here from the build
// machine's Debian ca-certificates and tzdata files, the application layer
// holds the static binary. Same inputs, same bytes: every timestamp is
// -epoch (SOURCE_DATE_EPOCH, the commit's time under make), entries are
// sorted and owners fixed. deploy/Dockerfile describes the same image for
// people with Docker; image_test.go keeps the two in step.
//
//	go run . -binary ../../bin/swa-linux-amd64 -out ../../bin/swa-image.tar \
//	    -sbom ../../bin/swa-image.spdx.json -version v1.2.3
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// GoBuildFlags are the flags of the image's binary: static, no paths of
// the build machine, no VCS stamp (the version comes in through -X), no
// symbol table. deploy/Dockerfile builds with the same ones.
var GoBuildFlags = []string{"-trimpath", "-buildvcs=false"}

// LDFlags sets the version; %s is the version.
const LDFlags = "-s -w -X main.version=%s"

// BuildBinary builds ./cmd/swa of the checkout src into out for linux/amd64
// with CGO off.
func BuildBinary(src, out, version string) error {
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	args := append([]string{"build"}, GoBuildFlags...)
	args = append(args, "-ldflags", fmt.Sprintf(LDFlags, version), "-o", abs, "./cmd/swa")
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go %v: %w", args, err)
	}
	return nil
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	var (
		s          Spec
		out, sbom  string
		digestFile string
		dpkg       string
		epoch      string
	)
	var src string
	fs.StringVar(&s.Binary, "binary", "", "static swa binary (linux/amd64); with -src, where to build it")
	fs.StringVar(&src, "src", "", "checkout to build the binary from first (go build with the image's flags)")
	fs.StringVar(&s.CACerts, "cacerts", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of Debian's ca-certificates")
	fs.StringVar(&s.Zoneinfo, "zoneinfo", "/usr/share/zoneinfo", "tzdata tree")
	fs.StringVar(&s.Version, "version", "dev", "version label and tag")
	fs.StringVar(&s.Revision, "revision", "", "source revision label")
	fs.StringVar(&out, "out", "bin/swa-image.tar", "image archive to write")
	fs.StringVar(&sbom, "sbom", "", "SPDX JSON SBOM to write (empty: none)")
	fs.StringVar(&digestFile, "digest-file", "", "file to write the manifest digest to")
	fs.StringVar(&dpkg, "dpkg-status", "/var/lib/dpkg/status", "dpkg status file, for the SBOM's Debian package versions")
	fs.StringVar(&epoch, "epoch", os.Getenv("SOURCE_DATE_EPOCH"), "unix time of every timestamp (default SOURCE_DATE_EPOCH, else 0)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.Binary == "" {
		return fmt.Errorf("-binary is required")
	}
	if src != "" {
		if err := BuildBinary(src, s.Binary, s.Version); err != nil {
			return err
		}
	}
	s.Epoch = time.Unix(0, 0).UTC()
	if epoch != "" {
		sec, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil {
			return fmt.Errorf("-epoch: %w", err)
		}
		s.Epoch = time.Unix(sec, 0).UTC()
	}
	img, err := Build(s)
	if err != nil {
		return err
	}
	ref := "swa:" + s.Version
	if err := WriteArchive(out, ref, img, s.Epoch); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	if digestFile != "" {
		if err := os.WriteFile(digestFile, []byte(digest.String()+"\n"), 0o644); err != nil {
			return err
		}
	}
	if sbom != "" {
		var debs []debPackage
		for _, p := range []string{"ca-certificates", "tzdata"} {
			if v := debianVersion(dpkg, p); v != "" {
				debs = append(debs, debPackage{p, v})
			}
		}
		doc, err := SBOM(s.Binary, img, debs, s.Epoch)
		if err != nil {
			return err
		}
		if err := os.WriteFile(sbom, append(doc, '\n'), 0o644); err != nil {
			return err
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s %s %s (%d bytes)\n", ref, digest, out, st.Size())
	return nil
}
