package main

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// SPDX 2.3, the fields this SBOM fills.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string       `json:"SPDXID"`
	Name             string       `json:"name"`
	VersionInfo      string       `json:"versionInfo,omitempty"`
	DownloadLocation string       `json:"downloadLocation"`
	FilesAnalyzed    bool         `json:"filesAnalyzed"`
	Checksums        []spdxSum    `json:"checksums,omitempty"`
	ExternalRefs     []spdxExtRef `json:"externalRefs,omitempty"`
	Comment          string       `json:"comment,omitempty"`
	PrimaryPurpose   string       `json:"primaryPackagePurpose,omitempty"`
	Supplier         string       `json:"supplier,omitempty"`
}

type spdxSum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type spdxExtRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

// debPackage is a Debian package whose files the base layer copies.
type debPackage struct{ Name, Version string }

// SBOM describes the image: the swa binary, the Go toolchain and every Go
// module compiled into it (read from the binary's build information, as
// `go version -m` prints it), and the Debian packages the base layer's
// files come from.
func SBOM(binary string, img v1.Image, debs []debPackage, epoch time.Time) ([]byte, error) {
	bi, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("sbom: %s: %w", binary, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	doc := spdxDoc{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              "swa-image",
		DocumentNamespace: "https://github.com/startupwebapp/platform/spdx/swa-image/" + digest.String(),
		CreationInfo: spdxCreation{
			Created:  epoch.UTC().Format(time.RFC3339),
			Creators: []string{"Tool: startupwebapp-deploy-image"},
		},
	}
	image := spdxPackage{
		SPDXID: "SPDXRef-Image", Name: "swa-image", VersionInfo: digest.String(),
		DownloadLocation: "NOASSERTION", PrimaryPurpose: "CONTAINER",
		Checksums: []spdxSum{{Algorithm: "SHA256", Value: digest.Hex}},
	}
	doc.Packages = append(doc.Packages, image)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", image.SPDXID})

	add := func(p spdxPackage, rel string) {
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{image.SPDXID, rel, p.SPDXID})
	}
	add(spdxPackage{
		SPDXID: "SPDXRef-Go-main", Name: bi.Main.Path, VersionInfo: moduleVersion(bi.Main),
		DownloadLocation: "NOASSERTION", PrimaryPurpose: "APPLICATION",
		ExternalRefs: []spdxExtRef{purl("golang", bi.Main.Path, moduleVersion(bi.Main))},
		Comment:      "the /swa binary; " + strings.Join(buildSettings(bi), " "),
	}, "CONTAINS")
	add(spdxPackage{
		SPDXID: "SPDXRef-Go-stdlib", Name: "stdlib", VersionInfo: bi.GoVersion,
		DownloadLocation: "https://go.dev/dl/", PrimaryPurpose: "LIBRARY",
		ExternalRefs: []spdxExtRef{purl("golang", "stdlib", bi.GoVersion)},
	}, "CONTAINS")
	for i, m := range bi.Deps {
		if m.Replace != nil {
			m = m.Replace
		}
		p := spdxPackage{
			SPDXID: fmt.Sprintf("SPDXRef-Go-%d", i), Name: m.Path, VersionInfo: m.Version,
			DownloadLocation: "https://proxy.golang.org/" + m.Path + "/@v/" + m.Version + ".zip",
			PrimaryPurpose:   "LIBRARY",
			ExternalRefs:     []spdxExtRef{purl("golang", m.Path, m.Version)},
		}
		if m.Sum != "" {
			p.Comment = "go.sum " + m.Sum
		}
		add(p, "CONTAINS")
	}
	for i, d := range debs {
		add(spdxPackage{
			SPDXID: fmt.Sprintf("SPDXRef-Deb-%d", i), Name: d.Name, VersionInfo: d.Version,
			DownloadLocation: "NOASSERTION", PrimaryPurpose: "LIBRARY", Supplier: "Organization: Debian",
			ExternalRefs: []spdxExtRef{{"PACKAGE-MANAGER", "purl", "pkg:deb/debian/" + d.Name + "@" + d.Version + "?arch=all"}},
			Comment:      "files copied into the base layer from the build machine",
		}, "CONTAINS")
	}
	return json.MarshalIndent(doc, "", "  ")
}

func moduleVersion(m debug.Module) string {
	if m.Version != "" && m.Version != "(devel)" {
		return m.Version
	}
	return "(devel)"
}

func buildSettings(bi *buildinfo.BuildInfo) []string {
	var out []string
	for _, s := range bi.Settings {
		out = append(out, s.Key+"="+s.Value)
	}
	return out
}

func purl(kind, path, version string) spdxExtRef {
	return spdxExtRef{"PACKAGE-MANAGER", "purl", "pkg:" + kind + "/" + path + "@" + version}
}
