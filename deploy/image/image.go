package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's one user, as in distroless's nonroot variant, so the
// Dockerfile and this builder describe the same runtime identity.
const (
	nonrootUID  = 65532
	nonrootName = "nonroot"
	nonrootHome = "/home/nonroot"
)

// Ports the image declares: data-plane API, control-plane API, and the
// data plane's /healthz /readyz /metrics listener.
var exposedPorts = []string{"8000/tcp", "8001/tcp", "9100/tcp"}

// Spec is everything that decides the image's bytes.
type Spec struct {
	// Binary is the static swa executable, placed at /swa.
	Binary string
	// CACerts is the PEM bundle placed at /etc/ssl/certs/ca-certificates.crt
	// (Debian's ca-certificates package writes it).
	CACerts string
	// Zoneinfo is the tzdata tree placed at /usr/share/zoneinfo.
	Zoneinfo string
	// Epoch is every timestamp in the image: file times, the config's
	// created time and its history.
	Epoch time.Time
	// Version and Revision become OCI annotations/labels.
	Version, Revision string
}

// entry is one file of a layer, built in memory so order and metadata
// depend on nothing but the inputs.
type entry struct {
	hdr  tar.Header
	body []byte
}

// Build assembles the image: a base layer (users, CA certificates, time
// zones, a home and /tmp, no shell) and an application layer with /swa.
func Build(s Spec) (v1.Image, error) {
	base, err := baseEntries(s)
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	app := []entry{file("swa", 0o755, bin)}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	var adds []mutate.Addendum
	for _, l := range []struct {
		entries []entry
		by      string
	}{
		{base, "base: passwd, group, CA certificates, tzdata"},
		{app, "COPY swa /swa"},
	} {
		layer, err := layerOf(l.entries, s.Epoch)
		if err != nil {
			return nil, err
		}
		adds = append(adds, mutate.Addendum{
			Layer:     layer,
			MediaType: types.OCILayer,
			History:   v1.History{Created: v1.Time{Time: s.Epoch}, CreatedBy: l.by},
		})
	}
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: s.Epoch}
	ports := map[string]struct{}{}
	for _, p := range exposedPorts {
		ports[p] = struct{}{}
	}
	labels := map[string]string{
		"org.opencontainers.image.title":   "swa",
		"org.opencontainers.image.version": s.Version,
	}
	if s.Revision != "" {
		labels["org.opencontainers.image.revision"] = s.Revision
	}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", nonrootUID, nonrootUID),
		Entrypoint:   []string{"/swa"},
		WorkingDir:   nonrootHome,
		ExposedPorts: ports,
		Env: []string{
			"PATH=/",
			"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
			"ZONEINFO=/usr/share/zoneinfo",
		},
		Labels: labels,
	}
	return mutate.ConfigFile(img, cf)
}

func baseEntries(s Spec) ([]entry, error) {
	certs, err := os.ReadFile(s.CACerts)
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if !bytes.Contains(certs, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("CA certificates: %s holds no PEM certificate", s.CACerts)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n"+
		"nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"+
		"%s:x:%d:%d:%s:%s:/sbin/nologin\n", nonrootName, nonrootUID, nonrootUID, nonrootName, nonrootHome)
	group := fmt.Sprintf("root:x:0:\nnobody:x:65534:\n%s:x:%d:\n", nonrootName, nonrootUID)
	out := []entry{
		dir("etc", 0o755, 0),
		file("etc/passwd", 0o644, []byte(passwd)),
		file("etc/group", 0o644, []byte(group)),
		// Go's resolver reads it to prefer /etc/hosts before DNS.
		file("etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")),
		dir("etc/ssl", 0o755, 0),
		dir("etc/ssl/certs", 0o755, 0),
		file("etc/ssl/certs/ca-certificates.crt", 0o644, certs),
		dir("home", 0o755, 0),
		dir(strings.TrimPrefix(nonrootHome, "/"), 0o700, nonrootUID),
		dir("tmp", 0o1777, 0),
		dir("usr", 0o755, 0),
		dir("usr/share", 0o755, 0),
	}
	// The "right" tree (leap-second clocks) is one Go never reads.
	zones, err := treeEntries(s.Zoneinfo, "usr/share/zoneinfo", func(rel string) bool { return rel == "right" })
	if err != nil {
		return nil, fmt.Errorf("tzdata: %w", err)
	}
	return append(out, zones...), nil
}

// treeEntries copies a directory tree (regular files, directories and
// symbolic links) under prefix with normalised modes and owners, leaving out
// the paths skip names.
func treeEntries(root, prefix string, skip func(rel string) bool) ([]entry, error) {
	var out []entry
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		name := prefix
		if rel != "." {
			name = prefix + "/" + filepath.ToSlash(rel)
		}
		if skip(rel) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				// Such a link (Debian's zoneinfo/localtime) points
				// out of the tree, at the build machine's own files.
				return nil
			}
			out = append(out, entry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}})
		case d.IsDir():
			out = append(out, dir(name, 0o755, 0))
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out = append(out, file(name, 0o644, b))
		}
		return nil
	})
	return out, err
}

func file(name string, mode int64, body []byte) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body))}, body: body}
}

func dir(name string, mode int64, uid int) entry {
	return entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid}}
}

// layerOf writes entries as one tar, sorted by name, every time set to
// epoch and no user or group names, so equal inputs give equal bytes.
func layerOf(entries []entry, epoch time.Time) (v1.Layer, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = epoch
		h.Format = tar.FormatPAX
		if h.Uname == "" && h.Uid == 0 {
			h.Uname, h.Gname = "root", "root"
		} else if h.Uid == nonrootUID {
			h.Uname, h.Gname = nonrootName, nonrootName
		}
		if err := tw.WriteHeader(&h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	raw := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// debianVersion reads an installed package's version from dpkg's status
// file, for the SBOM; empty when dpkg does not know it.
func debianVersion(status, pkg string) string {
	f, err := os.Open(status)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	in := false
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			in = false
		case strings.HasPrefix(line, "Package: "):
			in = strings.TrimPrefix(line, "Package: ") == pkg
		case in && strings.HasPrefix(line, "Version: "):
			return strings.TrimPrefix(line, "Version: ")
		}
	}
	return ""
}
