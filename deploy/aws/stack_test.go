package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// One synthesis for the whole package: the jsii runtime is slow to start.
var synth = sync.OnceValues(func() (assertions.Template, map[string]any) {
	app := awscdk.NewApp(nil)
	cfg := Environments["production"]
	cfg.Domain, cfg.ImageTag = "shops.example.com", "sha256:0123"
	stack := NewStack(app, "swa-production", cfg, &awscdk.StackProps{
		Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
	})
	tpl := assertions.Template_FromStack(stack.Stack, nil)
	raw, _ := json.Marshal(tpl.ToJSON())
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return tpl, doc
})

// has asserts with the assertions package, whose mismatch is a panic from
// the jsii runtime, as a test failure.
func has(t *testing.T, typ string, props map[string]any) {
	t.Helper()
	tpl, _ := synth()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", typ, r)
		}
	}()
	tpl.HasResourceProperties(jsii.String(typ), props)
}

func count(t *testing.T, typ string, n int) {
	t.Helper()
	tpl, _ := synth()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", typ, r)
		}
	}()
	tpl.ResourceCountIs(jsii.String(typ), jsii.Number(float64(n)))
}

type resource struct {
	id    string
	props map[string]any
	raw   map[string]any
}

func resources(t *testing.T, typ string) []resource {
	t.Helper()
	_, doc := synth()
	var out []resource
	for id, r := range doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			p, _ := r["Properties"].(map[string]any)
			out = append(out, resource{id, p, r})
		}
	}
	slices.SortFunc(out, func(a, b resource) int { return strings.Compare(a.id, b.id) })
	return out
}

func js(v any) string { b, _ := json.Marshal(v); return string(b) }

func like(m map[string]any) assertions.Matcher { return assertions.Match_ObjectLike(&m) }
func arrayWith(v ...any) assertions.Matcher    { return assertions.Match_ArrayWith(&v) }

func TestNetworkDataAndRegistry(t *testing.T) {
	count(t, "AWS::EC2::VPC", 1)
	count(t, "AWS::EC2::Subnet", 6) // public, app, data in each of two zones
	count(t, "AWS::EC2::NatGateway", 2)
	has(t, "AWS::RDS::DBInstance", map[string]any{
		"Engine": "postgres", "StorageEncrypted": true, "PubliclyAccessible": false,
		"DeletionProtection": true, "BackupRetentionPeriod": 30, "MultiAZ": true,
		"DBName": "swa_platform", "EnablePerformanceInsights": true, "StorageType": "gp3",
	})
	has(t, "AWS::RDS::DBParameterGroup", map[string]any{
		"Family": "postgres16",
		"Parameters": like(map[string]any{
			"max_connections": "2000", "rds.force_ssl": "1", "autovacuum_max_workers": "6",
		}),
	})
	for _, db := range resources(t, "AWS::RDS::DBInstance") {
		if db.raw["DeletionPolicy"] != "Snapshot" {
			t.Errorf("database deletion policy %v", db.raw["DeletionPolicy"])
		}
	}
	has(t, "AWS::ElastiCache::ReplicationGroup", map[string]any{
		"Engine": "redis", "TransitEncryptionEnabled": true, "AtRestEncryptionEnabled": true,
		"AutomaticFailoverEnabled": true, "NumCacheClusters": 2,
	})
	for _, name := range []string{"db-admin", "db-reader", "redis-token", "platform-database-url",
		"tenant-db-admin-url", "platform-read-database-url", "redis-url", "admin-token"} {
		has(t, "AWS::SecretsManager::Secret", map[string]any{"Name": "swa/platform/production/" + name})
	}
	// The URLs are assembled from dynamic references: no password in the template.
	_, doc := synth()
	if s := js(doc); strings.Contains(s, "SecretString\":\"postgres://swa_admin:") {
		t.Error("a database password is written into the template")
	}
	has(t, "AWS::ECR::Repository", map[string]any{
		"ImageTagMutability": "IMMUTABLE", "ImageScanningConfiguration": map[string]any{"ScanOnPush": true},
	})
}

// The database is reachable only inside the VPC: not public, in the
// isolated subnets only.
func TestDatabaseIsPrivate(t *testing.T) {
	isolated := map[string]bool{}
	for _, s := range resources(t, "AWS::EC2::Subnet") {
		if strings.Contains(js(s.props["Tags"]), `"Value":"data"`) {
			isolated[s.id] = true
			if s.props["MapPublicIpOnLaunch"] == true {
				t.Errorf("data subnet %s maps public IPs", s.id)
			}
		}
	}
	if len(isolated) != 2 {
		t.Fatalf("%d data subnets", len(isolated))
	}
	groups := resources(t, "AWS::RDS::DBSubnetGroup")
	if len(groups) != 1 {
		t.Fatalf("%d DB subnet groups", len(groups))
	}
	for _, ref := range groups[0].props["SubnetIds"].([]any) {
		if id, _ := ref.(map[string]any)["Ref"].(string); !isolated[id] {
			t.Errorf("database subnet %v is not a data subnet", ref)
		}
	}
	for _, db := range resources(t, "AWS::RDS::DBInstance") {
		if db.props["PubliclyAccessible"] != false {
			t.Errorf("database public: %v", db.props["PubliclyAccessible"])
		}
	}
}

func TestServicesAndRouting(t *testing.T) {
	has(t, "AWS::ECS::Service", map[string]any{
		"ServiceName": "swa-production-dataplane", "LaunchType": "FARGATE", "DesiredCount": 3,
		"DeploymentConfiguration": like(map[string]any{
			"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
			"MinimumHealthyPercent":    100,
		}),
		"NetworkConfiguration": map[string]any{"AwsvpcConfiguration": like(map[string]any{"AssignPublicIp": "DISABLED"})},
	})
	has(t, "AWS::ECS::Service", map[string]any{
		"ServiceName": "swa-production-controlplane", "DesiredCount": 1,
		"DeploymentConfiguration": like(map[string]any{
			"DeploymentCircuitBreaker": map[string]any{"Enable": true, "Rollback": true},
			"MaximumPercent":           100, "MinimumHealthyPercent": 0,
		}),
	})
	has(t, "AWS::ApplicationAutoScaling::ScalableTarget", map[string]any{"MinCapacity": 3, "MaxCapacity": 30})
	for _, metric := range []string{"ECSServiceAverageCPUUtilization", "ALBRequestCountPerTarget"} {
		has(t, "AWS::ApplicationAutoScaling::ScalingPolicy", map[string]any{
			"TargetTrackingScalingPolicyConfiguration": like(map[string]any{
				"PredefinedMetricSpecification": like(map[string]any{"PredefinedMetricType": metric}),
			}),
		})
	}
	has(t, "AWS::ECS::TaskDefinition", map[string]any{
		"ContainerDefinitions": arrayWith(like(map[string]any{
			"Command": []any{"serve"}, "User": "65532:65532", "ReadonlyRootFilesystem": true,
			// CDK writes the variables sorted by name.
			"Environment": arrayWith(
				map[string]any{"Name": "SWA_ADMIN_ADDR", "Value": ":9100"},
				map[string]any{"Name": "SWA_AWS_SECRETS_PREFIX", "Value": "swa/tenants/"},
				map[string]any{"Name": "SWA_BASE_DOMAIN", "Value": "shops.example.com"},
				// The platform site, forwarded to the control plane.
				map[string]any{"Name": "SWA_PLATFORM_SITE_URL", "Value": "https://admin.shops.example.com"},
				map[string]any{"Name": "SWA_SECRETS_BACKEND", "Value": "aws"},
			),
		})),
	})
	// The control plane believes the VPC's X-Forwarded-For: the internal
	// ALB's and the forwarding data plane's.
	has(t, "AWS::ECS::TaskDefinition", map[string]any{
		"ContainerDefinitions": arrayWith(like(map[string]any{
			"Command": []any{"controlplane"},
			"Environment": arrayWith(map[string]any{"Name": "SWA_TRUSTED_PROXIES",
				"Value": map[string]any{"Fn::GetAtt": arrayWith("CidrBlock")}}),
		})),
	})
	has(t, "AWS::ECS::TaskDefinition", map[string]any{
		"ContainerDefinitions": arrayWith(like(map[string]any{
			"Command": arrayWith("migrate", "--all-tenants"),
		})),
	})
	// One public load balancer, one HTTPS listener, one wildcard
	// certificate, no host rules: tenants are the data plane's business.
	lbs := resources(t, "AWS::ElasticLoadBalancingV2::LoadBalancer")
	public := 0
	for _, lb := range lbs {
		if lb.props["Scheme"] == "internet-facing" {
			public++
		}
	}
	if len(lbs) != 2 || public != 1 {
		t.Errorf("%d load balancers, %d public", len(lbs), public)
	}
	count(t, "AWS::ElasticLoadBalancingV2::ListenerRule", 0)
	count(t, "AWS::ElasticLoadBalancingV2::ListenerCertificate", 0)
	count(t, "AWS::CertificateManager::Certificate", 1)
	has(t, "AWS::CertificateManager::Certificate", map[string]any{"DomainName": "*.shops.example.com"})
	has(t, "AWS::ElasticLoadBalancingV2::Listener", map[string]any{
		"Port": 443, "Protocol": "HTTPS", "Certificates": assertions.Match_ArrayEquals(&[]any{like(map[string]any{})}),
	})
	has(t, "AWS::ElasticLoadBalancingV2::Listener", map[string]any{
		"Port": 80, "DefaultActions": arrayWith(like(map[string]any{"Type": "redirect"})),
	})
	has(t, "AWS::ElasticLoadBalancingV2::TargetGroup", map[string]any{
		"Port": 8000, "HealthCheckPath": "/readyz", "HealthCheckPort": "9100",
	})
}

func TestObservability(t *testing.T) {
	for _, n := range []string{"dataplane", "controlplane", "migrate"} {
		has(t, "AWS::Logs::LogGroup", map[string]any{"LogGroupName": "/swa/production/" + n, "RetentionInDays": 90})
	}
	for _, n := range []string{"Http5xxRate", "LatencyP99", "DatabaseConnections", "DatabaseCpu", "DatabaseStorage", "DataPlaneCpu"} {
		has(t, "AWS::CloudWatch::Alarm", map[string]any{"AlarmName": "swa-production-" + n, "AlarmActions": assertions.Match_AnyValue()})
	}
	has(t, "AWS::CloudWatch::Alarm", map[string]any{
		"AlarmName": "swa-production-LatencyP99", "ExtendedStatistic": "p99", "MetricName": "TargetResponseTime",
	})
	count(t, "AWS::CloudWatch::Dashboard", 1)
}

type statement struct {
	Effect   string
	Action   any
	Resource any
}

func (s statement) actions() []string { return stringsOf(s.Action) }

func stringsOf(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			if s, ok := x.(string); ok {
				out = append(out, s)
			} else {
				out = append(out, js(x))
			}
		}
		return out
	}
	return []string{js(v)}
}

// policies maps each role's logical id to the statements of every policy
// attached to it, inline or not.
func policies(t *testing.T) map[string][]statement {
	t.Helper()
	out := map[string][]statement{}
	add := func(role string, doc any) {
		var d struct{ Statement []statement }
		if err := json.Unmarshal([]byte(js(doc)), &d); err != nil {
			t.Fatal(err)
		}
		out[role] = append(out[role], d.Statement...)
	}
	for _, p := range resources(t, "AWS::IAM::Policy") {
		for _, r := range p.props["Roles"].([]any) {
			add(r.(map[string]any)["Ref"].(string), p.props["PolicyDocument"])
		}
	}
	for _, r := range resources(t, "AWS::IAM::Role") {
		pols, _ := r.props["Policies"].([]any)
		for _, p := range pols {
			add(r.id, p.(map[string]any)["PolicyDocument"])
		}
		if _, ok := out[r.id]; !ok {
			out[r.id] = nil
		}
	}
	return out
}

func roleID(t *testing.T, prefix string) string {
	t.Helper()
	for _, r := range resources(t, "AWS::IAM::Role") {
		if strings.HasPrefix(r.id, prefix) {
			return r.id
		}
	}
	t.Fatalf("no role %s*", prefix)
	return ""
}

func TestIAMIsLeastPrivilege(t *testing.T) {
	all := policies(t)
	for role, sts := range all {
		for _, s := range sts {
			for _, a := range s.actions() {
				if (a == "*" || strings.HasSuffix(a, ":*")) && slices.Contains(stringsOf(s.Resource), "*") {
					t.Errorf("%s: %s on *", role, a)
				}
			}
		}
	}
	writes := func(sts []statement) (out []string) {
		for _, s := range sts {
			for _, a := range s.actions() {
				if strings.HasPrefix(a, "secretsmanager:") && a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
					out = append(out, a)
				}
			}
		}
		return out
	}
	tenantARN := func(s statement) bool {
		r := js(s.Resource)
		return strings.Contains(r, ":secret:swa/tenants/*") && !strings.Contains(r, `"*"`)
	}
	control := roleID(t, "ControlPlaneTaskRole")
	for role, sts := range all {
		w := writes(sts)
		if role == control {
			if !slices.Contains(w, "secretsmanager:PutSecretValue") || !slices.Contains(w, "secretsmanager:CreateSecret") {
				t.Errorf("the control plane cannot write tenant secrets: %v", w)
			}
			for _, s := range sts {
				if !tenantARN(s) {
					t.Errorf("control plane statement beyond swa/tenants/*: %s", js(s))
				}
			}
			continue
		}
		if len(w) > 0 {
			t.Errorf("%s may write secrets: %v", role, w)
		}
	}
	for _, prefix := range []string{"DataPlaneTaskRole", "MigrateTaskRole"} {
		sts := all[roleID(t, prefix)]
		if len(sts) == 0 {
			t.Errorf("%s has no policy", prefix)
		}
		for _, s := range sts {
			if s.Effect != "Allow" || !tenantARN(s) {
				t.Errorf("%s: %s", prefix, js(s))
			}
			for _, a := range s.actions() {
				if a != "secretsmanager:GetSecretValue" && a != "secretsmanager:DescribeSecret" {
					t.Errorf("%s may %s", prefix, a)
				}
			}
		}
	}
}

// TestSecurityGroupsOpenOnlyWhatIsNeeded lists every ingress rule as
// (group, port, source) and compares it with the one list of what may
// reach what.
func TestSecurityGroupsOpenOnlyWhatIsNeeded(t *testing.T) {
	desc := map[string]string{} // logical id -> short name
	for _, g := range resources(t, "AWS::EC2::SecurityGroup") {
		d, _ := g.props["GroupDescription"].(string)
		desc[g.id] = strings.SplitN(d, ":", 2)[0]
	}
	name := func(v any) string {
		if m, ok := v.(map[string]any); ok {
			if ga, ok := m["Fn::GetAtt"].([]any); ok {
				return desc[ga[0].(string)]
			}
		}
		return js(v)
	}
	var got []string
	addRule := func(group string, r map[string]any) {
		from := ""
		switch {
		case r["CidrIp"] != nil:
			from = "cidr " + js(r["CidrIp"])
			if strings.Contains(from, "Fn::GetAtt") {
				from = "vpc"
			}
		case r["SourceSecurityGroupId"] != nil:
			from = name(r["SourceSecurityGroupId"])
		default:
			from = js(r)
		}
		got = append(got, fmt.Sprintf("%s <- %s on %v-%v", group, from, r["FromPort"], r["ToPort"]))
	}
	for _, g := range resources(t, "AWS::EC2::SecurityGroup") {
		ing, _ := g.props["SecurityGroupIngress"].([]any)
		for _, r := range ing {
			addRule(desc[g.id], r.(map[string]any))
		}
		eg, _ := g.props["SecurityGroupEgress"].([]any)
		for _, r := range eg {
			r := r.(map[string]any)
			if r["CidrIp"] == "0.0.0.0/0" && r["IpProtocol"] == "-1" &&
				!slices.Contains([]string{"data-plane tasks", "control-plane and migration tasks"}, desc[g.id]) {
				t.Errorf("%s may send anything anywhere", desc[g.id])
			}
		}
	}
	for _, r := range resources(t, "AWS::EC2::SecurityGroupIngress") {
		addRule(name(r.props["GroupId"]), r.props)
	}
	slices.Sort(got)
	want := []string{
		"ElastiCache Redis <- control-plane and migration tasks on 6379-6379",
		"ElastiCache Redis <- data-plane tasks on 6379-6379",
		"RDS Postgres <- control-plane and migration tasks on 5432-5432",
		"RDS Postgres <- data-plane tasks on 5432-5432",
		"control-plane and migration tasks <- internal ALB of the control plane on 8001-8001",
		"data-plane tasks <- public ALB on 8000-8000",
		"data-plane tasks <- public ALB on 9100-9100",
		`internal ALB of the control plane <- vpc on 443-443`,
		`public ALB <- cidr "0.0.0.0/0" on 443-443`,
		`public ALB <- cidr "0.0.0.0/0" on 80-80`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("ingress rules\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

func TestContextPicksTheEnvironment(t *testing.T) {
	cfgOf := func(ctx map[string]any) (Config, error) {
		return configFromContext(awscdk.NewApp(&awscdk.AppProps{Context: &ctx}))
	}
	cfg, err := cfgOf(map[string]any{"env": "staging", "domain": "shops.example.com", "imageTag": "v1", "dataPlaneMaxTasks": "8"})
	if err != nil || cfg.Env != "staging" || cfg.DataPlaneMaxTasks != 8 || cfg.DataPlaneMinTasks != 2 || cfg.Domain != "shops.example.com" {
		t.Errorf("staging: %+v %v", cfg, err)
	}
	for _, bad := range []map[string]any{
		{"env": "prod", "domain": "d", "imageTag": "v1"},
		{"env": "staging", "imageTag": "v1"},
		{"env": "staging", "domain": "d", "imageTag": "v1", "dataPlaneMinTasks": "x"},
		{"env": "staging", "domain": "d", "imageTag": "v1", "dataPlaneMinTasks": "9", "dataPlaneMaxTasks": "3"},
	} {
		if _, err := cfgOf(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
