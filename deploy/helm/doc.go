// Package helm holds the tests of the swa chart (deploy/helm/swa): they
// render it with Helm's own engine for several value sets and decode every
// object strictly into the Kubernetes API types. It is a module of its own
// so the platform's module never carries Helm's dependencies.
package helm
