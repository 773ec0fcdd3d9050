package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapplicationautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecr"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awselasticache"
	"github.com/aws/aws-cdk-go/awscdk/v2/awselasticloadbalancingv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsrds"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// Config is one environment of the platform: its name, domain and sizes.
type Config struct {
	// Env names the environment (staging, production); it starts every
	// resource name and log group.
	Env string
	// Domain is the base domain: tenants answer on {slug}.{Domain} through
	// one wildcard certificate, the control plane on admin.{Domain} inside
	// the VPC.
	Domain string
	// CertificateARN is an existing ACM certificate for *.{Domain}; empty
	// makes one, validated by DNS (the CNAME is added by hand or by the
	// zone's owner).
	CertificateARN string
	// ImageTag is the ECR image the services run (a tag or "sha256:..."
	// digest pushed by the release workflow).
	ImageTag string
	// AlarmEmail receives the alarms (empty: the topic has no subscriber).
	AlarmEmail string

	DataPlaneMinTasks, DataPlaneMaxTasks int
	DataPlaneCPU, DataPlaneMemoryMiB     int
	// Requests per data-plane task per minute the autoscaler aims at.
	DataPlaneRequestsPerTarget int
	DBInstanceClass            string // e.g. m7g.large
	DBStorageGiB, DBMaxStorage int
	DBMultiAZ                  bool
	DBBackupDays               int
	RedisNodeType              string // e.g. cache.t4g.small
	NATGateways                int
	LogRetentionDays           awslogs.RetentionDays
	// TenantSecretsPrefix is SWA_AWS_SECRETS_PREFIX: where tenant secrets
	// live in Secrets Manager.
	TenantSecretsPrefix string
}

// Environments are the sizes the deploy workflow picks by name.
var Environments = map[string]Config{
	"staging": {
		Env: "staging", DataPlaneMinTasks: 2, DataPlaneMaxTasks: 4, DataPlaneCPU: 512, DataPlaneMemoryMiB: 1024,
		DataPlaneRequestsPerTarget: 3000, DBInstanceClass: "t4g.medium", DBStorageGiB: 50, DBMaxStorage: 200,
		DBBackupDays: 7, RedisNodeType: "cache.t4g.small", NATGateways: 1, LogRetentionDays: awslogs.RetentionDays_ONE_MONTH,
		TenantSecretsPrefix: "swa/tenants/",
	},
	"production": {
		Env: "production", DataPlaneMinTasks: 3, DataPlaneMaxTasks: 30, DataPlaneCPU: 1024, DataPlaneMemoryMiB: 2048,
		DataPlaneRequestsPerTarget: 6000, DBInstanceClass: "m7g.large", DBStorageGiB: 200, DBMaxStorage: 2000, DBMultiAZ: true,
		DBBackupDays: 30, RedisNodeType: "cache.m7g.large", NATGateways: 2, LogRetentionDays: awslogs.RetentionDays_THREE_MONTHS,
		TenantSecretsPrefix: "swa/tenants/",
	},
}

// Ports of the swa binary.
const (
	dataPort    = 8000
	adminPort   = 9100
	controlPort = 8001
	pgPort      = 5432
	redisPort   = 6379
	// The Postgres roles the platform logs in as (see docs/operations).
	dbAdminUser  = "swa_admin"
	dbReaderUser = "swa_reader"
	platformDB   = "swa_platform"
)

// Characters a generated password leaves out, so it fits a URL unescaped.
const urlUnsafe = " %+~`#$&*()|[]{}:;<>?!'/@\"\\=,^"

// Stack is the platform in one account and region.
type Stack struct {
	awscdk.Stack
	DataPlaneRole, ControlPlaneRole, MigrateRole awsiam.Role
}

// NewStack builds every resource of one environment.
func NewStack(scope constructs.Construct, id string, cfg Config, props *awscdk.StackProps) *Stack {
	stack := awscdk.NewStack(scope, jsii.String(id), props)
	s := &Stack{Stack: stack}
	name := func(n string) *string { return jsii.String("swa-" + cfg.Env + "-" + n) }
	awscdk.Tags_Of(stack).Add(jsii.String("project"), jsii.String("startupwebapp"), nil)
	awscdk.Tags_Of(stack).Add(jsii.String("environment"), jsii.String(cfg.Env), nil)

	// Network: public subnets for the load balancer, private ones with a
	// way out for the tasks (Stripe, SMTP relays), isolated ones for data.
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(float64(cfg.NATGateways)),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("app"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(22)},
			{Name: jsii.String("data"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(24)},
		},
	})
	appSubnets := &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS}
	dataSubnets := &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}

	// Security groups open nothing by default; each rule below is one
	// peer reaching one port.
	sg := func(id, desc string, outbound bool) awsec2.SecurityGroup {
		return awsec2.NewSecurityGroup(stack, jsii.String(id), &awsec2.SecurityGroupProps{
			Vpc: vpc, Description: jsii.String(desc), AllowAllOutbound: jsii.Bool(outbound),
		})
	}
	publicALBSG := sg("PublicAlbSg", "public ALB: HTTPS from anywhere", false)
	internalALBSG := sg("InternalAlbSg", "internal ALB of the control plane: HTTPS from the VPC", false)
	// Tasks call Stripe, SMTP relays and AWS APIs: outbound stays open.
	dataSG := sg("DataPlaneSg", "data-plane tasks", true)
	controlSG := sg("ControlPlaneSg", "control-plane and migration tasks", true)
	dbSG := sg("DatabaseSg", "RDS Postgres: tasks only", false)
	redisSG := sg("RedisSg", "ElastiCache Redis: tasks only", false)

	publicALBSG.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("HTTPS"), nil)
	publicALBSG.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Tcp(jsii.Number(80)), jsii.String("HTTP, redirected to HTTPS"), nil)
	publicALBSG.AddEgressRule(dataSG, awsec2.Port_Tcp(jsii.Number(dataPort)), jsii.String("to the data plane"), nil)
	publicALBSG.AddEgressRule(dataSG, awsec2.Port_Tcp(jsii.Number(adminPort)), jsii.String("health checks"), nil)
	dataSG.AddIngressRule(publicALBSG, awsec2.Port_Tcp(jsii.Number(dataPort)), jsii.String("API from the ALB"), nil)
	dataSG.AddIngressRule(publicALBSG, awsec2.Port_Tcp(jsii.Number(adminPort)), jsii.String("/readyz from the ALB"), nil)
	internalALBSG.AddIngressRule(awsec2.Peer_Ipv4(vpc.VpcCidrBlock()), awsec2.Port_Tcp(jsii.Number(443)), jsii.String("admin API from the VPC"), nil)
	internalALBSG.AddEgressRule(controlSG, awsec2.Port_Tcp(jsii.Number(controlPort)), jsii.String("to the control plane"), nil)
	controlSG.AddIngressRule(internalALBSG, awsec2.Port_Tcp(jsii.Number(controlPort)), jsii.String("admin API from the internal ALB"), nil)
	for _, peer := range []awsec2.SecurityGroup{dataSG, controlSG} {
		dbSG.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(pgPort)), jsii.String("Postgres from tasks"), nil)
		redisSG.AddIngressRule(peer, awsec2.Port_Tcp(jsii.Number(redisPort)), jsii.String("Redis from tasks"), nil)
	}

	// Postgres: the control plane's first database server, holding the
	// registry and, at first, every tenant's database.
	params := awsrds.NewParameterGroup(stack, jsii.String("PostgresParams"), &awsrds.ParameterGroupProps{
		Engine:      awsrds.DatabaseInstanceEngine_Postgres(&awsrds.PostgresInstanceEngineProps{Version: awsrds.PostgresEngineVersion_VER_16()}),
		Description: jsii.String("swa: many small tenant databases"),
		Parameters: &map[string]*string{
			// Each data-plane task budgets SWA_POOL_BUDGET connections over
			// all its tenants; the control plane and migrations add theirs.
			"max_connections": jsii.String("2000"),
			"rds.force_ssl":   jsii.String("1"),
			// Hundreds of databases: more autovacuum workers, each with a
			// smaller share of the cost budget, visiting more often.
			"autovacuum_max_workers":              jsii.String("6"),
			"autovacuum_naptime":                  jsii.String("30"),
			"idle_in_transaction_session_timeout": jsii.String("60000"),
			"statement_timeout":                   jsii.String("0"),
			"log_min_duration_statement":          jsii.String("1000"),
			"shared_preload_libraries":            jsii.String("pg_stat_statements"),
			"track_io_timing":                     jsii.String("1"),
			"password_encryption":                 jsii.String("scram-sha-256"),
		},
	})
	db := awsrds.NewDatabaseInstance(stack, jsii.String("Postgres"), &awsrds.DatabaseInstanceProps{
		Engine:              awsrds.DatabaseInstanceEngine_Postgres(&awsrds.PostgresInstanceEngineProps{Version: awsrds.PostgresEngineVersion_VER_16()}),
		InstanceIdentifier:  name("postgres"),
		InstanceType:        awsec2.NewInstanceType(jsii.String(cfg.DBInstanceClass)),
		Vpc:                 vpc,
		VpcSubnets:          dataSubnets,
		SecurityGroups:      &[]awsec2.ISecurityGroup{dbSG},
		PubliclyAccessible:  jsii.Bool(false),
		MultiAz:             jsii.Bool(cfg.DBMultiAZ),
		StorageEncrypted:    jsii.Bool(true),
		StorageType:         awsrds.StorageType_GP3,
		AllocatedStorage:    jsii.Number(float64(cfg.DBStorageGiB)),
		MaxAllocatedStorage: jsii.Number(float64(cfg.DBMaxStorage)),
		BackupRetention:     awscdk.Duration_Days(jsii.Number(float64(cfg.DBBackupDays))),
		DeletionProtection:  jsii.Bool(true),
		RemovalPolicy:       awscdk.RemovalPolicy_SNAPSHOT,
		CopyTagsToSnapshot:  jsii.Bool(true),
		DatabaseName:        jsii.String(platformDB),
		ParameterGroup:      params,
		Credentials: awsrds.Credentials_FromGeneratedSecret(jsii.String(dbAdminUser), &awsrds.CredentialsBaseOptions{
			SecretName:        jsii.String("swa/platform/" + cfg.Env + "/db-admin"),
			ExcludeCharacters: jsii.String(urlUnsafe),
		}),
		EnablePerformanceInsights: jsii.Bool(true),
		CloudwatchLogsExports:     jsii.Strings("postgresql"),
		AutoMinorVersionUpgrade:   jsii.Bool(true),
	})

	// The reader login of the data plane; docs/operations/first-deployment.md
	// creates the role with this password.
	reader := awssecretsmanager.NewSecret(stack, jsii.String("ReaderLogin"), &awssecretsmanager.SecretProps{
		SecretName: jsii.String("swa/platform/" + cfg.Env + "/db-reader"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(fmt.Sprintf(`{"username":%q}`, dbReaderUser)),
			GenerateStringKey:    jsii.String("password"),
			ExcludeCharacters:    jsii.String(urlUnsafe),
			PasswordLength:       jsii.Number(40),
		},
	})

	// Redis with TLS and a token.
	redisToken := awssecretsmanager.NewSecret(stack, jsii.String("RedisToken"), &awssecretsmanager.SecretProps{
		SecretName: jsii.String("swa/platform/" + cfg.Env + "/redis-token"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			ExcludePunctuation: jsii.Bool(true), PasswordLength: jsii.Number(64),
		},
	})
	redisSubnets := awselasticache.NewCfnSubnetGroup(stack, jsii.String("RedisSubnets"), &awselasticache.CfnSubnetGroupProps{
		Description: jsii.String("swa redis"),
		SubnetIds:   anys(vpc.SelectSubnets(dataSubnets).SubnetIds),
	})
	redis := awselasticache.NewCfnReplicationGroup(stack, jsii.String("Redis"), &awselasticache.CfnReplicationGroupProps{
		ReplicationGroupDescription: jsii.String("swa sessions, rate limits, caches"),
		Engine:                      jsii.String("redis"),
		EngineVersion:               jsii.String("7.1"),
		CacheNodeType:               jsii.String(cfg.RedisNodeType),
		NumCacheClusters:            jsii.Number(2),
		AutomaticFailoverEnabled:    jsii.Bool(true),
		MultiAzEnabled:              jsii.Bool(true),
		TransitEncryptionEnabled:    jsii.Bool(true),
		AtRestEncryptionEnabled:     jsii.Bool(true),
		AuthToken:                   redisToken.SecretValue().UnsafeUnwrap(),
		CacheSubnetGroupName:        redisSubnets.Ref(),
		SecurityGroupIds:            jsii.Strings(*redisSG.SecurityGroupId()),
		Port:                        jsii.Number(redisPort),
	})

	// The URLs the binary reads, assembled by CloudFormation from the
	// generated passwords (dynamic references: no secret in the template).
	urlSecret := func(id, key string, value *string) awssecretsmanager.Secret {
		return awssecretsmanager.NewSecret(stack, jsii.String(id), &awssecretsmanager.SecretProps{
			SecretName:        jsii.String("swa/platform/" + cfg.Env + "/" + key),
			SecretStringValue: awscdk.SecretValue_UnsafePlainText(value),
		})
	}
	dbHost := *db.DbInstanceEndpointAddress()
	adminPassword := *db.Secret().SecretValueFromJson(jsii.String("password")).UnsafeUnwrap()
	readerPassword := *reader.SecretValueFromJson(jsii.String("password")).UnsafeUnwrap()
	platformURL := urlSecret("PlatformDatabaseUrl", "platform-database-url",
		jsii.String(fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=require", dbAdminUser, adminPassword, dbHost, pgPort, platformDB)))
	adminURL := urlSecret("TenantDbAdminUrl", "tenant-db-admin-url",
		jsii.String(fmt.Sprintf("postgres://%s:%s@%s:%d/postgres?sslmode=require", dbAdminUser, adminPassword, dbHost, pgPort)))
	readURL := urlSecret("PlatformReadDatabaseUrl", "platform-read-database-url",
		jsii.String(fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=require", dbReaderUser, readerPassword, dbHost, pgPort, platformDB)))
	redisURL := urlSecret("RedisUrl", "redis-url",
		jsii.String(fmt.Sprintf("rediss://:%s@%s:%d/0", *redisToken.SecretValue().UnsafeUnwrap(), *redis.AttrPrimaryEndPointAddress(), redisPort)))
	adminToken := awssecretsmanager.NewSecret(stack, jsii.String("AdminToken"), &awssecretsmanager.SecretProps{
		SecretName: jsii.String("swa/platform/" + cfg.Env + "/admin-token"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			ExcludePunctuation: jsii.Bool(true), PasswordLength: jsii.Number(48),
		},
	})

	repo := awsecr.NewRepository(stack, jsii.String("Repository"), &awsecr.RepositoryProps{
		RepositoryName:     name("swa"),
		ImageScanOnPush:    jsii.Bool(true),
		ImageTagMutability: awsecr.TagMutability_IMMUTABLE,
		Encryption:         awsecr.RepositoryEncryption_AES_256(),
		RemovalPolicy:      awscdk.RemovalPolicy_RETAIN,
		LifecycleRules: &[]*awsecr.LifecycleRule{{
			Description: jsii.String("keep the last 100 images"), MaxImageCount: jsii.Number(100),
		}},
	})

	cluster := awsecs.NewCluster(stack, jsii.String("Cluster"), &awsecs.ClusterProps{
		Vpc: vpc, ClusterName: name("cluster"), ContainerInsightsV2: awsecs.ContainerInsights_ENABLED,
	})
	logGroup := func(id, n string) awslogs.LogGroup {
		return awslogs.NewLogGroup(stack, jsii.String(id), &awslogs.LogGroupProps{
			LogGroupName: jsii.String("/swa/" + cfg.Env + "/" + n), Retention: cfg.LogRetentionDays,
			RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
		})
	}
	dataLogs, controlLogs, migrateLogs := logGroup("DataPlaneLogs", "dataplane"), logGroup("ControlPlaneLogs", "controlplane"), logGroup("MigrateLogs", "migrate")

	// Task roles: what the running binary may do. Tenant secrets are the
	// only secrets it touches itself; the platform's own reach it through
	// ECS (the execution roles below).
	tenantSecrets := awscdk.Arn_Format(&awscdk.ArnComponents{
		Service: jsii.String("secretsmanager"), Resource: jsii.String("secret"),
		ResourceName: jsii.String(cfg.TenantSecretsPrefix + "*"), ArnFormat: awscdk.ArnFormat_COLON_RESOURCE_NAME,
	}, stack)
	taskRole := func(id, desc string, actions ...string) awsiam.Role {
		r := awsiam.NewRole(stack, jsii.String(id), &awsiam.RoleProps{
			AssumedBy: awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), nil), Description: jsii.String(desc),
		})
		r.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("TenantSecrets"), Actions: jsii.Strings(actions...), Resources: jsii.Strings(*tenantSecrets),
		}))
		return r
	}
	read := []string{"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
	write := append(read, "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
		"secretsmanager:DeleteSecret", "secretsmanager:TagResource")
	s.DataPlaneRole = taskRole("DataPlaneTaskRole", "swa data plane: reads tenant secrets", read...)
	s.ControlPlaneRole = taskRole("ControlPlaneTaskRole", "swa control plane: manages tenant secrets", write...)
	s.MigrateRole = taskRole("MigrateTaskRole", "swa migrate: reads tenant secrets (database passwords)", read...)

	image := awsecs.ContainerImage_FromEcrRepository(repo, jsii.String(cfg.ImageTag))
	env := map[string]*string{
		"SWA_ENV":                jsii.String("production"),
		"SWA_LOG_FORMAT":         jsii.String("json"),
		"SWA_BASE_DOMAIN":        jsii.String(cfg.Domain),
		"SWA_SECRETS_BACKEND":    jsii.String("aws"),
		"SWA_AWS_SECRETS_PREFIX": jsii.String(cfg.TenantSecretsPrefix),
		"SWA_TENANT_DB_PARAMS":   jsii.String("sslmode=require"),
		"AWS_REGION":             stack.Region(),
	}
	with := func(extra map[string]*string) *map[string]*string {
		out := map[string]*string{}
		for k, v := range env {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return &out
	}
	secretEnv := func(m map[string]awssecretsmanager.ISecret) *map[string]awsecs.Secret {
		out := map[string]awsecs.Secret{}
		for k, v := range m {
			out[k] = awsecs.Secret_FromSecretsManager(v, nil)
		}
		return &out
	}
	container := func(td awsecs.FargateTaskDefinition, lg awslogs.LogGroup, command []string, e *map[string]*string,
		secrets *map[string]awsecs.Secret, health []string, ports ...int) awsecs.ContainerDefinition {
		var pm []*awsecs.PortMapping
		for _, p := range ports {
			pm = append(pm, &awsecs.PortMapping{ContainerPort: jsii.Number(float64(p)), Protocol: awsecs.Protocol_TCP})
		}
		opts := &awsecs.ContainerDefinitionOptions{
			Image: image, Command: jsii.Strings(command...), Environment: e, Secrets: secrets,
			Logging:                awsecs.LogDrivers_AwsLogs(&awsecs.AwsLogDriverProps{LogGroup: lg, StreamPrefix: jsii.String("swa")}),
			User:                   jsii.String("65532:65532"),
			ReadonlyRootFilesystem: jsii.Bool(true),
			Privileged:             jsii.Bool(false),
			PortMappings:           &pm,
			StopTimeout:            awscdk.Duration_Seconds(jsii.Number(30)),
		}
		if health != nil {
			opts.HealthCheck = &awsecs.HealthCheck{
				Command:     jsii.Strings(append([]string{"CMD"}, health...)...),
				Interval:    awscdk.Duration_Seconds(jsii.Number(10)),
				Timeout:     awscdk.Duration_Seconds(jsii.Number(5)),
				Retries:     jsii.Number(3),
				StartPeriod: awscdk.Duration_Seconds(jsii.Number(30)),
			}
		}
		return td.AddContainer(jsii.String("swa"), opts)
	}
	taskDef := func(id string, role awsiam.Role, cpu, mem int) awsecs.FargateTaskDefinition {
		return awsecs.NewFargateTaskDefinition(stack, jsii.String(id), &awsecs.FargateTaskDefinitionProps{
			Cpu: jsii.Number(float64(cpu)), MemoryLimitMiB: jsii.Number(float64(mem)), TaskRole: role,
			RuntimePlatform: &awsecs.RuntimePlatform{
				CpuArchitecture: awsecs.CpuArchitecture_X86_64(), OperatingSystemFamily: awsecs.OperatingSystemFamily_LINUX(),
			},
		})
	}

	// Data plane.
	dataTD := taskDef("DataPlaneTask", s.DataPlaneRole, cfg.DataPlaneCPU, cfg.DataPlaneMemoryMiB)
	container(dataTD, dataLogs, []string{"serve"}, with(map[string]*string{
		"SWA_HTTP_ADDR":       jsii.String(fmt.Sprintf(":%d", dataPort)),
		"SWA_ADMIN_ADDR":      jsii.String(fmt.Sprintf(":%d", adminPort)),
		"SWA_TRUSTED_PROXIES": vpc.VpcCidrBlock(),
		"SWA_POOL_BUDGET":     jsii.String("50"),
		// The platform hosts (the public ALB sends every host here) go on
		// to the control plane's site through the internal ALB
		// (admin.{Domain} in the VPC's private zone).
		"SWA_PLATFORM_SITE_URL": jsii.String("https://admin." + cfg.Domain),
	}), secretEnv(map[string]awssecretsmanager.ISecret{
		"SWA_PLATFORM_READ_DATABASE_URL": readURL,
		"SWA_REDIS_URL":                  redisURL,
	}), []string{"/swa", "healthcheck", fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort)}, dataPort, adminPort)
	dataSvc := awsecs.NewFargateService(stack, jsii.String("DataPlane"), &awsecs.FargateServiceProps{
		Cluster: cluster, TaskDefinition: dataTD, ServiceName: name("dataplane"),
		DesiredCount: jsii.Number(float64(cfg.DataPlaneMinTasks)), VpcSubnets: appSubnets,
		SecurityGroups: &[]awsec2.ISecurityGroup{dataSG}, AssignPublicIp: jsii.Bool(false),
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		MinHealthyPercent: jsii.Number(100), MaxHealthyPercent: jsii.Number(200),
		HealthCheckGracePeriod: awscdk.Duration_Seconds(jsii.Number(60)),
		EnableExecuteCommand:   jsii.Bool(false),
	})

	// Control plane: one task, never two (it migrates the registry at
	// start and runs the operation queue).
	controlTD := taskDef("ControlPlaneTask", s.ControlPlaneRole, 512, 1024)
	controlSecrets := map[string]awssecretsmanager.ISecret{
		"SWA_PLATFORM_DATABASE_URL": platformURL,
		"SWA_TENANT_DB_ADMIN_URL":   adminURL,
		"SWA_REDIS_URL":             redisURL,
	}
	withToken := map[string]awssecretsmanager.ISecret{"SWA_ADMIN_TOKEN": adminToken}
	for k, v := range controlSecrets {
		withToken[k] = v
	}
	container(controlTD, controlLogs, []string{"controlplane"}, with(map[string]*string{
		"SWA_CONTROLPLANE_ADDR": jsii.String(fmt.Sprintf(":%d", controlPort)),
		"SWA_TENANT_DB_HOST":    jsii.String(fmt.Sprintf("%s:%d", dbHost, pgPort)),
		// The internal ALB and the data-plane tasks that forward the
		// platform site's requests: the site reads the founder's address
		// from their X-Forwarded-For.
		"SWA_TRUSTED_PROXIES": vpc.VpcCidrBlock(),
	}), secretEnv(withToken), []string{"/swa", "healthcheck", fmt.Sprintf("http://127.0.0.1:%d/healthz", controlPort)}, controlPort)
	controlSvc := awsecs.NewFargateService(stack, jsii.String("ControlPlane"), &awsecs.FargateServiceProps{
		Cluster: cluster, TaskDefinition: controlTD, ServiceName: name("controlplane"),
		DesiredCount: jsii.Number(1), VpcSubnets: appSubnets,
		SecurityGroups: &[]awsec2.ISecurityGroup{controlSG}, AssignPublicIp: jsii.Bool(false),
		CircuitBreaker:    &awsecs.DeploymentCircuitBreaker{Enable: jsii.Bool(true), Rollback: jsii.Bool(true)},
		MinHealthyPercent: jsii.Number(0), MaxHealthyPercent: jsii.Number(100),
	})

	// Migrations: run by the deploy workflow with `aws ecs run-task`,
	// its command overridden per wave.
	migrateTD := taskDef("MigrateTask", s.MigrateRole, 512, 1024)
	container(migrateTD, migrateLogs, []string{"migrate", "--all-tenants", "--canary-percent", "5", "--batch", "20"},
		with(map[string]*string{"SWA_TENANT_DB_HOST": jsii.String(fmt.Sprintf("%s:%d", dbHost, pgPort))}),
		secretEnv(controlSecrets), nil)

	// One certificate for every tenant.
	var cert awscertificatemanager.ICertificate
	if cfg.CertificateARN != "" {
		cert = awscertificatemanager.Certificate_FromCertificateArn(stack, jsii.String("Certificate"), jsii.String(cfg.CertificateARN))
	} else {
		cert = awscertificatemanager.NewCertificate(stack, jsii.String("Certificate"), &awscertificatemanager.CertificateProps{
			DomainName:              jsii.String("*." + cfg.Domain),
			SubjectAlternativeNames: jsii.Strings(cfg.Domain),
			Validation:              awscertificatemanager.CertificateValidation_FromDns(nil),
		})
	}

	// The public ALB: one HTTPS listener whose default action is the data
	// plane, no host rules: the data plane routes tenants by Host.
	alb := awselasticloadbalancingv2.NewApplicationLoadBalancer(stack, jsii.String("PublicAlb"), &awselasticloadbalancingv2.ApplicationLoadBalancerProps{
		Vpc: vpc, InternetFacing: jsii.Bool(true), SecurityGroup: publicALBSG, LoadBalancerName: name("public"),
		VpcSubnets: &awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}, DropInvalidHeaderFields: jsii.Bool(true),
	})
	alb.AddRedirect(&awselasticloadbalancingv2.ApplicationLoadBalancerRedirectConfig{
		SourcePort: jsii.Number(80), TargetPort: jsii.Number(443),
	})
	https := alb.AddListener(jsii.String("Https"), &awselasticloadbalancingv2.BaseApplicationListenerProps{
		Port: jsii.Number(443), Protocol: awselasticloadbalancingv2.ApplicationProtocol_HTTPS, Open: jsii.Bool(false),
		Certificates: &[]awselasticloadbalancingv2.IListenerCertificate{awselasticloadbalancingv2.ListenerCertificate_FromCertificateManager(cert)},
		SslPolicy:    awselasticloadbalancingv2.SslPolicy_RECOMMENDED_TLS,
	})
	dataTG := https.AddTargets(jsii.String("DataPlane"), &awselasticloadbalancingv2.AddApplicationTargetsProps{
		Port: jsii.Number(dataPort), Protocol: awselasticloadbalancingv2.ApplicationProtocol_HTTP,
		Targets: &[]awselasticloadbalancingv2.IApplicationLoadBalancerTarget{dataSvc.LoadBalancerTarget(&awsecs.LoadBalancerTargetOptions{
			ContainerName: jsii.String("swa"), ContainerPort: jsii.Number(dataPort),
		})},
		HealthCheck: &awselasticloadbalancingv2.HealthCheck{
			Path: jsii.String("/readyz"), Port: jsii.String(fmt.Sprint(adminPort)),
			HealthyHttpCodes: jsii.String("200"), Interval: awscdk.Duration_Seconds(jsii.Number(10)),
			HealthyThresholdCount: jsii.Number(2), UnhealthyThresholdCount: jsii.Number(3),
		},
		DeregistrationDelay: awscdk.Duration_Seconds(jsii.Number(20)),
	})

	// The control plane, inside the VPC only: admin.{Domain} on an
	// internal ALB with the same certificate.
	internal := awselasticloadbalancingv2.NewApplicationLoadBalancer(stack, jsii.String("InternalAlb"), &awselasticloadbalancingv2.ApplicationLoadBalancerProps{
		Vpc: vpc, InternetFacing: jsii.Bool(false), SecurityGroup: internalALBSG, LoadBalancerName: name("internal"),
		VpcSubnets: appSubnets, DropInvalidHeaderFields: jsii.Bool(true),
	})
	internal.AddListener(jsii.String("Https"), &awselasticloadbalancingv2.BaseApplicationListenerProps{
		Port: jsii.Number(443), Protocol: awselasticloadbalancingv2.ApplicationProtocol_HTTPS, Open: jsii.Bool(false),
		Certificates: &[]awselasticloadbalancingv2.IListenerCertificate{awselasticloadbalancingv2.ListenerCertificate_FromCertificateManager(cert)},
		SslPolicy:    awselasticloadbalancingv2.SslPolicy_RECOMMENDED_TLS,
	}).AddTargets(jsii.String("ControlPlane"), &awselasticloadbalancingv2.AddApplicationTargetsProps{
		Port: jsii.Number(controlPort), Protocol: awselasticloadbalancingv2.ApplicationProtocol_HTTP,
		Targets:     &[]awselasticloadbalancingv2.IApplicationLoadBalancerTarget{controlSvc},
		HealthCheck: &awselasticloadbalancingv2.HealthCheck{Path: jsii.String("/healthz"), HealthyHttpCodes: jsii.String("200")},
	})

	// Autoscaling on CPU and on requests per task.
	scaling := dataSvc.AutoScaleTaskCount(&awsapplicationautoscaling.EnableScalingProps{
		MinCapacity: jsii.Number(float64(cfg.DataPlaneMinTasks)), MaxCapacity: jsii.Number(float64(cfg.DataPlaneMaxTasks)),
	})
	scaling.ScaleOnCpuUtilization(jsii.String("Cpu"), &awsecs.CpuUtilizationScalingProps{
		TargetUtilizationPercent: jsii.Number(60),
		ScaleInCooldown:          awscdk.Duration_Minutes(jsii.Number(5)), ScaleOutCooldown: awscdk.Duration_Minutes(jsii.Number(1)),
	})
	scaling.ScaleOnRequestCount(jsii.String("Requests"), &awsecs.RequestCountScalingProps{
		RequestsPerTarget: jsii.Number(float64(cfg.DataPlaneRequestsPerTarget)), TargetGroup: dataTG,
		ScaleInCooldown: awscdk.Duration_Minutes(jsii.Number(5)), ScaleOutCooldown: awscdk.Duration_Minutes(jsii.Number(1)),
	})

	s.alarms(cfg, alb, dataTG, dataSvc, db)

	out := func(id string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v})
	}
	out("LoadBalancerDns", alb.LoadBalancerDnsName())
	out("InternalLoadBalancerDns", internal.LoadBalancerDnsName())
	out("RepositoryUri", repo.RepositoryUri())
	out("ClusterName", cluster.ClusterName())
	out("DataPlaneService", dataSvc.ServiceName())
	out("ControlPlaneService", controlSvc.ServiceName())
	out("MigrateTaskDefinition", migrateTD.TaskDefinitionArn())
	out("MigrateSubnets", awscdk.Fn_Join(jsii.String(","), vpc.SelectSubnets(appSubnets).SubnetIds))
	out("MigrateSecurityGroup", controlSG.SecurityGroupId())
	out("DatabaseEndpoint", db.DbInstanceEndpointAddress())
	out("AdminTokenSecret", adminToken.SecretName())
	// The image the services run, so a deploy can roll back to it.
	out("ImageTag", jsii.String(cfg.ImageTag))
	out("MigrateTaskFamily", migrateTD.Family())
	return s
}

// alarms: 5xx rate, p99 latency, database connections, CPU and storage,
// and a dashboard with the same metrics.
func (s *Stack) alarms(cfg Config, alb awselasticloadbalancingv2.ApplicationLoadBalancer,
	tg awselasticloadbalancingv2.ApplicationTargetGroup, svc awsecs.FargateService, db awsrds.DatabaseInstance) {
	topic := awssns.NewTopic(s.Stack, jsii.String("Alarms"), &awssns.TopicProps{TopicName: jsii.String("swa-" + cfg.Env + "-alarms")})
	if cfg.AlarmEmail != "" {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(cfg.AlarmEmail), nil))
	}
	five := awscdk.Duration_Minutes(jsii.Number(5))
	m := &awscloudwatch.MetricOptions{Period: five}
	requests := alb.Metrics().RequestCount(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")})
	errors5xx := tg.Metrics().HttpCodeTarget(awselasticloadbalancingv2.HttpCodeTarget_TARGET_5XX_COUNT,
		&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("Sum")})
	errorRate := awscloudwatch.NewMathExpression(&awscloudwatch.MathExpressionProps{
		Expression:   jsii.String("IF(requests > 0, 100 * errors / requests, 0)"),
		UsingMetrics: &map[string]awscloudwatch.IMetric{"errors": errors5xx, "requests": requests},
		Label:        jsii.String("5xx %"), Period: five,
	})
	p99 := tg.Metrics().TargetResponseTime(&awscloudwatch.MetricOptions{Period: five, Statistic: jsii.String("p99")})
	conns := db.MetricDatabaseConnections(m)
	dbCPU := db.MetricCPUUtilization(m)
	storage := db.MetricFreeStorageSpace(m)
	cpu := svc.MetricCpuUtilization(m)

	alarm := func(id, desc string, metric awscloudwatch.IMetric, threshold float64, op awscloudwatch.ComparisonOperator) {
		a := awscloudwatch.NewAlarm(s.Stack, jsii.String(id), &awscloudwatch.AlarmProps{
			AlarmName: jsii.String("swa-" + cfg.Env + "-" + id), AlarmDescription: jsii.String(desc),
			Metric: metric, Threshold: jsii.Number(threshold), ComparisonOperator: op,
			EvaluationPeriods: jsii.Number(3), DatapointsToAlarm: jsii.Number(2),
			TreatMissingData: awscloudwatch.TreatMissingData_NOT_BREACHING,
		})
		a.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
	}
	above := awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD
	alarm("Http5xxRate", "more than 1% of data-plane responses are 5xx", errorRate, 1, above)
	alarm("LatencyP99", "data-plane p99 above 2 s", p99, 2, above)
	alarm("DatabaseConnections", "Postgres connections above 80% of max_connections", conns, 1600, above)
	alarm("DatabaseCpu", "Postgres CPU above 80%", dbCPU, 80, above)
	alarm("DatabaseStorage", "Postgres free storage below 10 GiB", storage, 10*1024*1024*1024, awscloudwatch.ComparisonOperator_LESS_THAN_THRESHOLD)
	alarm("DataPlaneCpu", "data-plane CPU above 85% (autoscaling at its maximum?)", cpu, 85, above)

	dash := awscloudwatch.NewDashboard(s.Stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{DashboardName: jsii.String("swa-" + cfg.Env)})
	graph := func(title string, metrics ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{Title: jsii.String(title), Left: &metrics, Width: jsii.Number(8)})
	}
	dash.AddWidgets(graph("Requests", requests), graph("5xx %", errorRate), graph("p99 latency (s)", p99))
	dash.AddWidgets(graph("Data-plane CPU %", cpu), graph("Postgres connections", conns), graph("Postgres free storage", storage))
}

// anys is a list of strings as the L1 constructs that take any values want it.
func anys(in *[]*string) *[]interface{} {
	out := make([]interface{}, 0, len(*in))
	for _, s := range *in {
		out = append(out, s)
	}
	return &out
}
