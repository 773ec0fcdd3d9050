// Command aws is the platform on AWS as a CDK v2 app: one stack per
// environment (VPC, RDS Postgres, ElastiCache Redis, Secrets Manager, ECR,
// ECS Fargate services behind one public ALB, alarms and a dashboard).
//
//	cdk diff   -c env=staging -c domain=shops.example.com -c imageTag=sha256:...
//	cdk deploy -c env=production -c domain=shops.example.com -c imageTag=sha256:... \
//	    -c certificateArn=arn:aws:acm:... -c alarmEmail=ops@example.com
//
// cdk.json runs it with `go run .`; tests synthesise it in-process.
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := configFromContext(app)
	if err != nil {
		fmt.Fprintln(os.Stderr, "swa cdk:", err)
		os.Exit(2)
	}
	NewStack(app, "swa-"+cfg.Env, cfg, &awscdk.StackProps{
		Env: &awscdk.Environment{
			Account: jsii.String(os.Getenv("CDK_DEFAULT_ACCOUNT")),
			Region:  jsii.String(os.Getenv("CDK_DEFAULT_REGION")),
		},
		Description: jsii.String("StartupWebApp platform, " + cfg.Env),
	})
	app.Synth(nil)
}

// configFromContext picks the environment's sizes and applies the
// context values (-c key=value) that override them.
func configFromContext(app awscdk.App) (Config, error) {
	get := func(k string) string {
		if v, ok := app.Node().TryGetContext(jsii.String(k)).(string); ok {
			return v
		}
		return ""
	}
	env := get("env")
	cfg, ok := Environments[env]
	if !ok {
		return Config{}, fmt.Errorf("-c env=%q: want staging or production", env)
	}
	cfg.Domain, cfg.ImageTag = get("domain"), get("imageTag")
	cfg.CertificateARN, cfg.AlarmEmail = get("certificateArn"), get("alarmEmail")
	if cfg.Domain == "" || cfg.ImageTag == "" {
		return Config{}, fmt.Errorf("-c domain=... and -c imageTag=... are required")
	}
	for k, p := range map[string]*int{"dataPlaneMinTasks": &cfg.DataPlaneMinTasks, "dataPlaneMaxTasks": &cfg.DataPlaneMaxTasks,
		"dataPlaneCpu": &cfg.DataPlaneCPU, "dataPlaneMemory": &cfg.DataPlaneMemoryMiB, "dbStorageGiB": &cfg.DBStorageGiB} {
		if v := get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return Config{}, fmt.Errorf("-c %s=%q: want a positive number", k, v)
			}
			*p = n
		}
	}
	if v := get("dbInstanceClass"); v != "" {
		cfg.DBInstanceClass = v
	}
	if cfg.DataPlaneMinTasks > cfg.DataPlaneMaxTasks {
		return Config{}, fmt.Errorf("dataPlaneMinTasks %d above dataPlaneMaxTasks %d", cfg.DataPlaneMinTasks, cfg.DataPlaneMaxTasks)
	}
	return cfg, nil
}
