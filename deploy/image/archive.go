package main

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// WriteArchive writes img as an OCI image layout in one tar (oci-layout,
// index.json, blobs/sha256/...), with a Docker manifest.json beside it, as
// `docker save` writes since Docker 25: `docker load`, `podman load`,
// `skopeo copy oci-archive:` and `crane push` (after untarring) all take it.
// Every entry has the same time and a fixed order, so one image always
// gives the same file.
func WriteArchive(path, ref string, img v1.Image, epoch time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := writeArchive(f, ref, img, epoch); err != nil {
		return err
	}
	return f.Close()
}

func writeArchive(w io.Writer, ref string, img v1.Image, epoch time.Time) error {
	rawManifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}

	index, err := json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType:   types.OCIManifestSchema1,
			Size:        int64(len(rawManifest)),
			Digest:      digest,
			Annotations: map[string]string{"org.opencontainers.image.ref.name": ref, "io.containerd.image.name": ref},
		}},
	})
	if err != nil {
		return err
	}
	docker := []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{{Config: blobPath(cfgName), RepoTags: []string{ref}}}

	tw := tar.NewWriter(w)
	put := func(name string, body []byte) error {
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	mkdir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	if err := mkdir("blobs/"); err != nil {
		return err
	}
	if err := mkdir("blobs/sha256/"); err != nil {
		return err
	}
	if err := put(blobPath(cfgName), rawConfig); err != nil {
		return err
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if err := put(blobPath(d), body); err != nil {
			return err
		}
		docker[0].Layers = append(docker[0].Layers, blobPath(d))
	}
	if err := put(blobPath(digest), rawManifest); err != nil {
		return err
	}
	if err := put("index.json", index); err != nil {
		return err
	}
	dm, err := json.Marshal(docker)
	if err != nil {
		return err
	}
	if err := put("manifest.json", dm); err != nil {
		return err
	}
	if err := put("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	return tw.Close()
}

func blobPath(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }
