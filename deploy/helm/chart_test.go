package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The two custom resources the chart may render, with only the fields it
// writes: decoding stays strict for them too.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path"`
			Interval string `json:"interval"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type externalSecret struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		RefreshInterval string `json:"refreshInterval"`
		SecretStoreRef  struct {
			Name string `json:"name"`
			Kind string `json:"kind"`
		} `json:"secretStoreRef"`
		Target struct {
			Name           string `json:"name"`
			CreationPolicy string `json:"creationPolicy"`
			DeletionPolicy string `json:"deletionPolicy"`
		} `json:"target"`
		Data []struct {
			SecretKey string `json:"secretKey"`
			RemoteRef struct {
				Key string `json:"key"`
			} `json:"remoteRef"`
		} `json:"data"`
	} `json:"spec"`
}

func newObject(apiVersion, kind string) (any, error) {
	switch apiVersion + " " + kind {
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, nil
	case "v1 Secret":
		return &corev1.Secret{}, nil
	case "v1 Service":
		return &corev1.Service{}, nil
	case "apps/v1 Deployment":
		return &appsv1.Deployment{}, nil
	case "batch/v1 Job":
		return &batchv1.Job{}, nil
	case "autoscaling/v2 HorizontalPodAutoscaler":
		return &autoscalingv2.HorizontalPodAutoscaler{}, nil
	case "policy/v1 PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, nil
	case "networking.k8s.io/v1 Ingress":
		return &networkingv1.Ingress{}, nil
	case "monitoring.coreos.com/v1 ServiceMonitor":
		return &serviceMonitor{}, nil
	case "external-secrets.io/v1 ExternalSecret":
		return &externalSecret{}, nil
	}
	return nil, fmt.Errorf("kind %s %s is not one the chart should render", apiVersion, kind)
}

// rendered is one render of the chart, by kind and name.
type rendered struct {
	objects map[string]any // "Kind/name"
}

func (r rendered) get(t *testing.T, kind, name string) any {
	t.Helper()
	o, ok := r.objects[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s/%s among %v", kind, name, r.names())
	}
	return o
}

func (r rendered) names() []string {
	var out []string
	for k := range r.objects {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load("swa")
	if err != nil {
		t.Fatalf("load chart: %v", err)
	}
	return ch
}

// render renders the chart as an upgrade (revision 2, so the pre-upgrade
// hook is among the objects) after validating values against its schema.
func render(t *testing.T, values string) (rendered, error) {
	t.Helper()
	ch := loadChart(t)
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	opts := chartutil.ReleaseOptions{Name: "prod", Namespace: "swa", Revision: 2, IsUpgrade: true}
	rv, err := chartutil.ToRenderValues(ch, vals, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return rendered{}, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return rendered{}, err
	}
	out := rendered{objects: map[string]any{}}
	var fileNames []string
	for name := range files {
		fileNames = append(fileNames, name)
	}
	sort.Strings(fileNames)
	for _, name := range fileNames {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range releaseutil.SplitManifests(files[name]) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			raw, err := yaml.YAMLToJSONStrict([]byte(doc))
			if err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(raw, &tm); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			obj, err := newObject(tm.APIVersion, tm.Kind)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(obj); err != nil {
				t.Fatalf("%s: %s does not decode strictly: %v\n%s", name, tm.Kind, err, doc)
			}
			meta := obj.(metav1.ObjectMetaAccessor).GetObjectMeta()
			if meta.GetName() == "" {
				t.Fatalf("%s: %s without a name", name, tm.Kind)
			}
			key := tm.Kind + "/" + meta.GetName()
			if _, dup := out.objects[key]; dup {
				t.Fatalf("%s rendered twice", key)
			}
			out.objects[key] = obj
		}
	}
	return out, nil
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func mustRender(t *testing.T, values string) rendered {
	t.Helper()
	r, err := render(t, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

const localSecrets = `
secrets:
  create: true
  values:
    platformDatabaseURL: postgres://swa:pw@db:5432/swa_platform
    platformReadDatabaseURL: postgres://swa_reader:pw@db:5432/swa_platform
    tenantDBAdminURL: postgres://swa:pw@db:5432/postgres
    redisURL: redis://redis:6379/0
    masterKey: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
    adminToken: swa_test
`

const awsValues = `
image:
  repository: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/swa
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
baseDomain: shops.example.org
trustedProxies: 10.0.0.0/16
secretsBackend: aws
aws:
  region: eu-west-1
  secretsPrefix: swa/tenants/
externalSecrets:
  enabled: true
  secretStoreRef:
    name: aws-secrets
dataplane:
  serviceAccount:
    annotations:
      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/swa-dataplane
  autoscaling:
    minReplicas: 4
    maxReplicas: 40
controlplane:
  serviceAccount:
    annotations:
      eks.amazonaws.com/role-arn: arn:aws:iam::123456789012:role/swa-controlplane
migrations:
  canary: [startupwebapp, healthtech]
  batch: 25
  gateCommand: [/swa, healthcheck, "http://prod-swa-dataplane:9100/readyz"]
platformSite:
  hosts: shops.example.org,www.shops.example.org
  dataplaneCIDRs: 10.1.0.0/16
ingress:
  className: alb
  tlsSecretName: wildcard-shops
  extraHosts: [shop.acme.test]
metrics:
  serviceMonitor:
    enabled: true
    labels:
      release: prometheus
`

const fixedValues = `
secrets:
  existingSecret: swa-platform
dataplane:
  replicas: 5
  autoscaling:
    enabled: false
  podDisruptionBudget:
    enabled: false
  topologySpread:
    enabled: false
migrations:
  enabled: false
ingress:
  enabled: false
`

var valueSets = map[string]string{"local": localSecrets, "aws": awsValues, "fixed": fixedValues}

func TestEveryValueSetRendersStrictly(t *testing.T) {
	want := map[string][]string{
		"local": {"Deployment/prod-swa-controlplane", "Deployment/prod-swa-dataplane", "HorizontalPodAutoscaler/prod-swa-dataplane",
			"Ingress/prod-swa", "Job/prod-swa-migrate-2", "PodDisruptionBudget/prod-swa-dataplane", "Secret/prod-swa-secrets",
			"Service/prod-swa-controlplane", "Service/prod-swa-dataplane", "ServiceAccount/prod-swa-controlplane", "ServiceAccount/prod-swa-dataplane"},
		"aws": {"Deployment/prod-swa-controlplane", "Deployment/prod-swa-dataplane", "ExternalSecret/prod-swa", "HorizontalPodAutoscaler/prod-swa-dataplane",
			"Ingress/prod-swa", "Job/prod-swa-migrate-2", "PodDisruptionBudget/prod-swa-dataplane",
			"Service/prod-swa-controlplane", "Service/prod-swa-dataplane", "ServiceAccount/prod-swa-controlplane", "ServiceAccount/prod-swa-dataplane",
			"ServiceMonitor/prod-swa"},
		"fixed": {"Deployment/prod-swa-controlplane", "Deployment/prod-swa-dataplane",
			"Service/prod-swa-controlplane", "Service/prod-swa-dataplane", "ServiceAccount/prod-swa-controlplane", "ServiceAccount/prod-swa-dataplane"},
	}
	for name, values := range valueSets {
		t.Run(name, func(t *testing.T) {
			r := mustRender(t, values)
			if got := r.names(); !slices.Equal(got, want[name]) {
				t.Errorf("objects\n got %v\nwant %v", got, want[name])
			}
			checkPods(t, name, r)
			checkSecretRefs(t, r)
		})
	}
}

func podSpecs(r rendered) map[string]corev1.PodSpec {
	out := map[string]corev1.PodSpec{}
	for k, o := range r.objects {
		switch o := o.(type) {
		case *appsv1.Deployment:
			out[k] = o.Spec.Template.Spec
		case *batchv1.Job:
			out[k] = o.Spec.Template.Spec
		}
	}
	return out
}

func envOf(c corev1.Container) map[string]corev1.EnvVar {
	out := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		out[e.Name] = e
	}
	return out
}

// Every pod: non-root as 65532, read-only root filesystem, no privilege
// escalation, every capability dropped, resources set, the chart's image.
func checkPods(t *testing.T, set string, r rendered) {
	t.Helper()
	for name, ps := range podSpecs(r) {
		sc := ps.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 ||
			sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: pod security context %+v", name, sc)
		}
		if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a service account token", name)
		}
		for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
			csc := c.SecurityContext
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.Privileged == nil || *csc.Privileged ||
				csc.Capabilities == nil || !slices.Equal(csc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(csc.Capabilities.Add) != 0 {
				t.Errorf("%s/%s: container security context %+v", name, c.Name, csc)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s/%s: resources %+v", name, c.Name, c.Resources)
			}
			wantImage := "swa:0.1.0"
			if set == "aws" {
				wantImage = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/swa@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			}
			if c.Image != wantImage {
				t.Errorf("%s/%s: image %s, want %s", name, c.Name, c.Image, wantImage)
			}
			for _, e := range c.EnvFrom {
				t.Errorf("%s/%s: envFrom %+v: every variable is named", name, c.Name, e)
			}
		}
	}
}

// Every secret reference names the one platform Secret and a key it has.
func checkSecretRefs(t *testing.T, r rendered) {
	t.Helper()
	var secretName string
	keys := map[string]bool{}
	for _, o := range r.objects {
		switch o := o.(type) {
		case *corev1.Secret:
			secretName = o.Name
			for k := range o.StringData {
				keys[k] = true
			}
		case *externalSecret:
			secretName = o.Spec.Target.Name
			for _, d := range o.Spec.Data {
				keys[d.SecretKey] = true
				if !strings.HasPrefix(d.RemoteRef.Key, "swa/platform/") {
					t.Errorf("ExternalSecret key %s reads %s", d.SecretKey, d.RemoteRef.Key)
				}
			}
		}
	}
	if secretName == "" {
		secretName, keys = "swa-platform", nil // existingSecret: made outside the chart
	}
	refs := 0
	for name, ps := range podSpecs(r) {
		for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				ref := e.ValueFrom.SecretKeyRef
				if ref == nil {
					t.Errorf("%s/%s: %s is not from a Secret", name, c.Name, e.Name)
					continue
				}
				refs++
				if ref.Name != secretName || (keys != nil && !keys[ref.Key]) {
					t.Errorf("%s/%s: %s reads %s/%s; the chart's Secret is %s with keys %v", name, c.Name, e.Name, ref.Name, ref.Key, secretName, keys)
				}
			}
		}
	}
	if refs == 0 {
		t.Error("no secret references at all")
	}
}

func TestDataPlane(t *testing.T) {
	r := mustRender(t, awsValues)
	d := r.get(t, "Deployment", "prod-swa-dataplane").(*appsv1.Deployment)
	ps := d.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("%d containers", len(ps.Containers))
	}
	c := ps.Containers[0]
	env := envOf(c)
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args %v", c.Args)
	}
	// The probes reach the admin listener, which must not be on loopback.
	if env["SWA_ADMIN_ADDR"].Value != ":9100" {
		t.Errorf("SWA_ADMIN_ADDR %q", env["SWA_ADMIN_ADDR"].Value)
	}
	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["admin"] != 9100 || ports["http"] != 8000 || env["SWA_HTTP_ADDR"].Value != ":8000" {
		t.Errorf("ports %v, HTTP addr %q", ports, env["SWA_HTTP_ADDR"].Value)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"startup", c.StartupProbe, "/readyz"}, {"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if p.probe == nil || p.probe.HTTPGet == nil || p.probe.HTTPGet.Path != p.path || p.probe.HTTPGet.Port.String() != "admin" {
			t.Errorf("%s probe %+v, want GET %s on admin", p.name, p.probe, p.path)
		}
	}
	// The data plane reads the registry read-only and holds no admin login.
	for _, v := range []string{"SWA_PLATFORM_DATABASE_URL", "SWA_TENANT_DB_ADMIN_URL", "SWA_ADMIN_TOKEN", "SWA_MASTER_KEY"} {
		if _, ok := env[v]; ok {
			t.Errorf("data plane has %s", v)
		}
	}
	if env["SWA_PLATFORM_READ_DATABASE_URL"].ValueFrom == nil || env["SWA_SECRETS_BACKEND"].Value != "aws" ||
		env["SWA_AWS_SECRETS_PREFIX"].Value != "swa/tenants/" || env["SWA_BASE_DOMAIN"].Value != "shops.example.org" ||
		env["SWA_TRUSTED_PROXIES"].Value != "10.0.0.0/16" {
		t.Errorf("env %v", env)
	}
	if d.Spec.Replicas != nil {
		t.Errorf("replicas %d set beside an HPA", *d.Spec.Replicas)
	}
	if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update %+v", d.Spec.Strategy.RollingUpdate)
	}
	podLabels := d.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if podLabels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(d.Spec.Selector.MatchLabels) {
		t.Errorf("selector %v, pod labels %v", d.Spec.Selector.MatchLabels, podLabels)
	}
	zones := false
	for _, tsc := range ps.TopologySpreadConstraints {
		if !matches(tsc.LabelSelector.MatchLabels) {
			t.Errorf("spread %s selects %v", tsc.TopologyKey, tsc.LabelSelector.MatchLabels)
		}
		zones = zones || (tsc.TopologyKey == "topology.kubernetes.io/zone" && tsc.WhenUnsatisfiable == corev1.DoNotSchedule)
	}
	if !zones {
		t.Errorf("no hard spread over zones: %+v", ps.TopologySpreadConstraints)
	}
	if ps.ServiceAccountName != "prod-swa-dataplane" {
		t.Errorf("service account %s", ps.ServiceAccountName)
	}
	sa := r.get(t, "ServiceAccount", "prod-swa-dataplane").(*corev1.ServiceAccount)
	if sa.Annotations["eks.amazonaws.com/role-arn"] != "arn:aws:iam::123456789012:role/swa-dataplane" {
		t.Errorf("data plane service account annotations %v", sa.Annotations)
	}

	hpa := r.get(t, "HorizontalPodAutoscaler", "prod-swa-dataplane").(*autoscalingv2.HorizontalPodAutoscaler)
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != d.Name ||
		*hpa.Spec.MinReplicas != 4 || hpa.Spec.MaxReplicas != 40 || len(hpa.Spec.Metrics) != 1 ||
		hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU || *hpa.Spec.Metrics[0].Resource.Target.AverageUtilization != 70 {
		t.Errorf("HPA %+v", hpa.Spec)
	}
	pdb := r.get(t, "PodDisruptionBudget", "prod-swa-dataplane").(*policyv1.PodDisruptionBudget)
	if !matches(pdb.Spec.Selector.MatchLabels) || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PDB %+v", pdb.Spec)
	}

	svc := r.get(t, "Service", "prod-swa-dataplane").(*corev1.Service)
	if !matches(svc.Spec.Selector) {
		t.Errorf("service selects %v", svc.Spec.Selector)
	}
	for _, p := range svc.Spec.Ports {
		if _, ok := ports[p.TargetPort.String()]; !ok {
			t.Errorf("service port %s targets %s, which the container lacks", p.Name, p.TargetPort.String())
		}
	}
	sm := r.get(t, "ServiceMonitor", "prod-swa").(*serviceMonitor)
	if sm.Labels["release"] != "prometheus" || len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "admin" ||
		sm.Spec.Endpoints[0].Path != "/metrics" || !mapsSubset(sm.Spec.Selector.MatchLabels, svc.Labels) {
		t.Errorf("ServiceMonitor %+v (service labels %v)", sm, svc.Labels)
	}
}

func mapsSubset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

func TestIngressIsOneWildcard(t *testing.T) {
	r := mustRender(t, awsValues)
	ing := r.get(t, "Ingress", "prod-swa").(*networkingv1.Ingress)
	if ing.Spec.IngressClassName == nil || *ing.Spec.IngressClassName != "alb" {
		t.Errorf("class %v", ing.Spec.IngressClassName)
	}
	var hosts []string
	for _, rule := range ing.Spec.Rules {
		hosts = append(hosts, rule.Host)
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service.Name != "prod-swa-dataplane" || p.Backend.Service.Port.Name != "http" || p.Path != "/" {
				t.Errorf("host %s routes %s to %+v", rule.Host, p.Path, p.Backend.Service)
			}
		}
	}
	if !slices.Equal(hosts, []string{"*.shops.example.org", "shop.acme.test"}) {
		t.Errorf("hosts %v", hosts)
	}
	if len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "wildcard-shops" || !slices.Equal(ing.Spec.TLS[0].Hosts, []string{"*.shops.example.org"}) {
		t.Errorf("TLS %+v", ing.Spec.TLS)
	}
	if ing.Spec.DefaultBackend == nil || ing.Spec.DefaultBackend.Service.Name != "prod-swa-dataplane" {
		t.Errorf("default backend %+v", ing.Spec.DefaultBackend)
	}
}

func TestControlPlane(t *testing.T) {
	r := mustRender(t, awsValues)
	d := r.get(t, "Deployment", "prod-swa-controlplane").(*appsv1.Deployment)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("replicas %v strategy %s", d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := envOf(c)
	for _, v := range []string{"SWA_PLATFORM_DATABASE_URL", "SWA_TENANT_DB_ADMIN_URL", "SWA_ADMIN_TOKEN", "SWA_REDIS_URL"} {
		if env[v].ValueFrom == nil || env[v].ValueFrom.SecretKeyRef == nil {
			t.Errorf("control plane %s not from the Secret: %+v", v, env[v])
		}
	}
	if !slices.Equal(c.Args, []string{"controlplane"}) || env["SWA_CONTROLPLANE_ADDR"].Value != ":8001" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Port.String() != "api" {
		t.Errorf("control plane container %+v", c)
	}
	svc := r.get(t, "Service", "prod-swa-controlplane").(*corev1.Service)
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("control plane service type %s", svc.Spec.Type)
	}
	// The platform site: the control plane trusts the data-plane pods'
	// X-Forwarded-For, and the data plane forwards the platform hosts to
	// this Service's port.
	if env["SWA_TRUSTED_PROXIES"].Value != "10.1.0.0/16" || env["SWA_PLATFORM_HOSTS"].Value != "shops.example.org,www.shops.example.org" {
		t.Errorf("control plane SWA_TRUSTED_PROXIES %q, SWA_PLATFORM_HOSTS %q", env["SWA_TRUSTED_PROXIES"].Value, env["SWA_PLATFORM_HOSTS"].Value)
	}
	dp := envOf(r.get(t, "Deployment", "prod-swa-dataplane").(*appsv1.Deployment).Spec.Template.Spec.Containers[0])
	if want := fmt.Sprintf("http://%s:%d", svc.Name, svc.Spec.Ports[0].Port); dp["SWA_PLATFORM_SITE_URL"].Value != want ||
		svc.Spec.Ports[0].TargetPort.String() != "api" || dp["SWA_PLATFORM_HOSTS"].Value != env["SWA_PLATFORM_HOSTS"].Value {
		t.Errorf("data plane SWA_PLATFORM_SITE_URL %q (want %s), SWA_PLATFORM_HOSTS %q", dp["SWA_PLATFORM_SITE_URL"].Value, want, dp["SWA_PLATFORM_HOSTS"].Value)
	}
	ing := r.get(t, "Ingress", "prod-swa").(*networkingv1.Ingress)
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			if p.Backend.Service.Name == svc.Name {
				t.Errorf("the ingress exposes the control plane on %s", rule.Host)
			}
		}
	}
}

func TestMigrationJobRunsBeforeTheUpgrade(t *testing.T) {
	r := mustRender(t, awsValues)
	job := r.get(t, "Job", "prod-swa-migrate-2").(*batchv1.Job)
	if job.Annotations["helm.sh/hook"] != "pre-upgrade" {
		t.Errorf("hook %q", job.Annotations["helm.sh/hook"])
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 || job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("a failed wave must not be retried by Kubernetes: backoff %v restart %s", job.Spec.BackoffLimit, job.Spec.Template.Spec.RestartPolicy)
	}
	ps := job.Spec.Template.Spec
	if len(ps.InitContainers) != 1 || !slices.Equal(ps.InitContainers[0].Args, []string{"migrate"}) {
		t.Errorf("init containers %+v", ps.InitContainers)
	}
	want := []string{"migrate", "--all-tenants", "--canary=startupwebapp,healthtech", "--batch=25", "--concurrency=8",
		"--gate-command=/swa healthcheck http://prod-swa-dataplane:9100/readyz"}
	if len(ps.Containers) != 1 || !slices.Equal(ps.Containers[0].Args, want) {
		t.Errorf("args %q, want %q", ps.Containers[0].Args, want)
	}
	// A pre-upgrade hook runs before this revision's objects exist: it may
	// read only what the previous revision left, which for settings means
	// nothing (they are written into the job) and for secrets the Secret,
	// whose name does not change between revisions.
	for _, c := range append(slices.Clone(ps.InitContainers), ps.Containers...) {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				t.Errorf("%s reads ConfigMap %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Name)
			}
		}
		if env := envOf(c); env["SWA_PLATFORM_DATABASE_URL"].ValueFrom == nil || env["SWA_TENANT_DB_ADMIN_URL"].ValueFrom == nil {
			t.Errorf("%s lacks the control plane's logins", c.Name)
		}
	}
	for _, v := range ps.Volumes {
		if v.ConfigMap != nil || v.Secret != nil {
			t.Errorf("volume %s", v.Name)
		}
	}

	// Percentages when no tenant is named.
	job = mustRender(t, localSecrets).get(t, "Job", "prod-swa-migrate-2").(*batchv1.Job)
	if args := job.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, "--canary-percent=5") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--gate-command") }) {
		t.Errorf("default args %q", args)
	}
}

func TestFixedReplicas(t *testing.T) {
	r := mustRender(t, fixedValues)
	d := r.get(t, "Deployment", "prod-swa-dataplane").(*appsv1.Deployment)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 5 || len(d.Spec.Template.Spec.TopologySpreadConstraints) != 0 {
		t.Errorf("replicas %v spread %v", d.Spec.Replicas, d.Spec.Template.Spec.TopologySpreadConstraints)
	}
	// With the local backend, tenant secrets are sealed in the registry and
	// the data plane needs the key to open them (with aws it has none).
	env := envOf(d.Spec.Template.Spec.Containers[0])
	if env["SWA_MASTER_KEY"].ValueFrom == nil || env["SWA_MASTER_KEY"].ValueFrom.SecretKeyRef.Key != "master-key" {
		t.Errorf("the data plane of the local backend has no master key: %+v", env["SWA_MASTER_KEY"])
	}
}

func TestBadValuesAreRefused(t *testing.T) {
	for name, c := range map[string]struct{ values, want string }{
		"typo":            {localSecrets + "dataplane:\n  replica: 3\n", "replica"},
		"backend":         {localSecrets + "secretsBackend: vault\n", "secretsBackend"},
		"type":            {localSecrets + "dataplane:\n  replicas: three\n", "replicas"},
		"digest":          {localSecrets + "image:\n  digest: latest\n", "digest"},
		"canary percent":  {localSecrets + "migrations:\n  canaryPercent: 101\n", "canaryPercent"},
		"no secrets":      {"baseDomain: example.com\n", "exactly one of"},
		"two secrets":     {localSecrets + "  existingSecret: other\n", "exactly one of"},
		"store":           {"externalSecrets:\n  enabled: true\n", "secretStoreRef.name"},
		"missing key":     {strings.Replace(localSecrets, "    adminToken: swa_test\n", "", 1), "adminToken"},
		"domain":          {localSecrets + "baseDomain: Example.COM/x\n", "baseDomain"},
		"extra env typo":  {localSecrets + "dataplane:\n  extraEnv:\n    - name: X\n      valeu: y\n", "valeu"},
		"unknown section": {localSecrets + "postgres:\n  enabled: true\n", "postgres"},
		"platform hosts":  {localSecrets + "platformSite:\n  hosts: https://www.example.com\n", "hosts"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := render(t, c.values)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want one naming %q", err, c.want)
			}
		})
	}
}

// The schema stands alone: every $ref points inside it.
func TestSchemaIsSelfContained(t *testing.T) {
	raw, err := os.ReadFile(path.Join("swa", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`"\$ref":\s*"([^"]*)"`).FindAllStringSubmatch(string(raw), -1)
	if len(refs) == 0 {
		t.Fatal("no $ref found: the pattern no longer matches the file")
	}
	for _, m := range refs {
		if !strings.HasPrefix(m[1], "#/") {
			t.Errorf("$ref %s leaves the schema", m[1])
		}
	}
	// And the chart's own defaults satisfy it once a secret source is set.
	mustRender(t, "secrets:\n  existingSecret: x\n")
}

// TestPlatformSiteOff: without the platform site the data plane forwards
// nothing and the control plane trusts no forwarded header.
func TestPlatformSiteOff(t *testing.T) {
	r := mustRender(t, localSecrets+"platformSite:\n  enabled: false\n")
	dp := envOf(r.get(t, "Deployment", "prod-swa-dataplane").(*appsv1.Deployment).Spec.Template.Spec.Containers[0])
	cp := envOf(r.get(t, "Deployment", "prod-swa-controlplane").(*appsv1.Deployment).Spec.Template.Spec.Containers[0])
	if _, ok := dp["SWA_PLATFORM_SITE_URL"]; ok {
		t.Errorf("data plane forwards the platform site: %+v", dp["SWA_PLATFORM_SITE_URL"])
	}
	if _, ok := cp["SWA_TRUSTED_PROXIES"]; ok {
		t.Errorf("control plane trusts %+v", cp["SWA_TRUSTED_PROXIES"])
	}
	if on := envOf(mustRender(t, localSecrets).get(t, "Deployment", "prod-swa-dataplane").(*appsv1.Deployment).Spec.Template.Spec.Containers[0]); on["SWA_PLATFORM_SITE_URL"].Value != "http://prod-swa-controlplane:8001" {
		t.Errorf("by default the data plane forwards to %q", on["SWA_PLATFORM_SITE_URL"].Value)
	}
}
