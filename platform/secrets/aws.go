package secrets

import (
	"context"
	"errors"
	"fmt"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/smithy-go"
)

// SecretsManagerAPI is the part of *secretsmanager.Client the aws backend uses.
type SecretsManagerAPI interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	ListSecretVersionIds(ctx context.Context, in *secretsmanager.ListSecretVersionIdsInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.ListSecretVersionIdsOutput, error)
	DeleteSecret(ctx context.Context, in *secretsmanager.DeleteSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DeleteSecretOutput, error)
}

var _ SecretsManagerAPI = (*secretsmanager.Client)(nil)

// AWS keeps secrets in AWS Secrets Manager.
//
// Names: the SecretId of name is prefix+name, unless name already starts with
// prefix, in which case it is name itself. So with the default prefix
// "swa/tenants/", TenantSecretName("acme") and "acme" both address the secret
// "swa/tenants/acme"; an empty prefix uses names as they are.
//
// Versions: the integer version n is the Secrets Manager VersionId
// "swa-version-" followed by n in 20 digits, set through ClientRequestToken.
// A Put reads the newest number (DescribeSecret) and writes n+1; Secrets
// Manager refuses a second, different value under an existing VersionId, so
// of two concurrent Puts that picked the same n one fails and retries with a
// higher number. Get reads the AWSCURRENT stage, which every Put moves to the
// version it writes. Versions lists VersionIds including deprecated ones
// (Secrets Manager keeps the newest 100 and all of the last 24 hours);
// VersionIds not of this form (written by other tools) are ignored.
//
// Values that are valid UTF-8 are stored as SecretString (readable in the
// console), others as SecretBinary; Get returns the same bytes either way.
type AWS struct {
	client SecretsManagerAPI
	prefix string
}

var _ Store = (*AWS)(nil)

// NewAWS returns the aws backend on client with the SecretId prefix.
func NewAWS(client SecretsManagerAPI, prefix string) *AWS {
	return &AWS{client: client, prefix: prefix}
}

// awsCallTimeout bounds one HTTP exchange with Secrets Manager.
const awsCallTimeout = 10 * time.Second

// NewAWSClient builds a Secrets Manager client from the standard AWS
// configuration chain (environment, shared files, instance or task role).
// region, when not empty, overrides the chain's region; endpoint, when not
// empty, replaces the service endpoint (emulators).
func NewAWSClient(ctx context.Context, region, endpoint string, optFns ...func(*config.LoadOptions) error) (*secretsmanager.Client, error) {
	// Every call has a deadline of its own, so a hung endpoint cannot hold a
	// request (or a provisioning step) forever; later options may replace it.
	defaults := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(awsCallTimeout)),
	}
	if region != "" {
		defaults = append(defaults, config.WithRegion(region))
	}
	optFns = append(defaults, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, optFns...)
	if err != nil {
		return nil, fmt.Errorf("aws secrets: load configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("aws secrets: no region (set AWS_REGION or the region option)")
	}
	return secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}), nil
}

// SecretID is the Secrets Manager SecretId that name maps to.
func (a *AWS) SecretID(name string) string {
	if strings.HasPrefix(name, a.prefix) {
		return name
	}
	return a.prefix + name
}

const (
	versionIDPrefix = "swa-version-"
	stageCurrent    = "AWSCURRENT"
	// maxPutAttempts bounds the retries of a Put that keeps losing the race
	// for a version number to other writers.
	maxPutAttempts = 64
)

// awsVersionID is the VersionId of version n: 32 characters, the minimum
// length of a ClientRequestToken.
func awsVersionID(n int) string { return fmt.Sprintf("%s%020d", versionIDPrefix, n) }

// parseAWSVersionID returns the version number of a VersionId written by
// this backend, or false.
func parseAWSVersionID(id string) (int, bool) {
	digits, ok := strings.CutPrefix(id, versionIDPrefix)
	if !ok || len(digits) != 20 {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 1 {
		return 0, false
	}
	return n, true
}

// Put stores value as the newest version of name.
func (a *AWS) Put(ctx context.Context, name string, value []byte) (int, error) {
	if err := checkPut(name, value); err != nil {
		return 0, err
	}
	id := a.SecretID(name)
	taken := 0 // the highest number another writer was seen to hold
	for range maxPutAttempts {
		newest, exists, err := a.newest(ctx, id)
		if err != nil {
			return 0, fmt.Errorf("put secret %s: %w", name, err)
		}
		if !exists {
			// Created empty so that the first version, like every other,
			// gets its VersionId from PutSecretValue.
			_, err := a.client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
				Name:        aws.String(id),
				Description: aws.String("StartupWebApp platform secret; versions are numbered by the platform"),
				Tags:        []types.Tag{{Key: aws.String("managed-by"), Value: aws.String("swa-platform")}},
			})
			if err != nil && !isCode(err, "ResourceExistsException") {
				return 0, fmt.Errorf("put secret %s: create: %w", name, err)
			}
		}
		n := max(newest, taken) + 1
		in := &secretsmanager.PutSecretValueInput{
			SecretId:           aws.String(id),
			ClientRequestToken: aws.String(awsVersionID(n)),
		}
		if utf8.Valid(value) {
			in.SecretString = aws.String(string(value))
		} else {
			in.SecretBinary = value
		}
		out, err := a.client.PutSecretValue(ctx, in)
		switch {
		case isCode(err, "ResourceExistsException"):
			// Version n exists with another value: someone else wrote it.
			taken = n
			continue
		case isNotFound(err):
			// Deleted under us; create it again.
			continue
		case err != nil:
			return 0, fmt.Errorf("put secret %s: version %d: %w", name, n, err)
		}
		// A version that already held this very value is accepted without
		// moving AWSCURRENT; only a version that is now current is newest.
		if !slices.Contains(out.VersionStages, stageCurrent) {
			taken = n
			continue
		}
		return n, nil
	}
	return 0, fmt.Errorf("put secret %s: gave up after %d attempts lost to concurrent writers", name, maxPutAttempts)
}

// newest returns the highest version number among the versions DescribeSecret
// reports (those with a staging label, which include AWSCURRENT), and whether
// the secret exists.
func (a *AWS) newest(ctx context.Context, id string) (int, bool, error) {
	out, err := a.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if isNotFound(err) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("describe: %w", err)
	}
	n := 0
	for vid := range out.VersionIdsToStages {
		if v, ok := parseAWSVersionID(vid); ok {
			n = max(n, v)
		}
	}
	return n, true, nil
}

// Get returns the AWSCURRENT version of name, or ErrNotFound.
func (a *AWS) Get(ctx context.Context, name string) ([]byte, error) {
	value, err := a.get(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:     aws.String(a.SecretID(name)),
		VersionStage: aws.String(stageCurrent),
	})
	if err != nil {
		return nil, fmt.Errorf("get secret %s: %w", name, err)
	}
	return value, nil
}

// GetVersion returns one version of name, or ErrNotFound.
func (a *AWS) GetVersion(ctx context.Context, name string, version int) ([]byte, error) {
	if version < 1 {
		return nil, fmt.Errorf("get secret %s version %d: %w", name, version, ErrNotFound)
	}
	value, err := a.get(ctx, &secretsmanager.GetSecretValueInput{
		SecretId:  aws.String(a.SecretID(name)),
		VersionId: aws.String(awsVersionID(version)),
	})
	if err != nil {
		return nil, fmt.Errorf("get secret %s version %d: %w", name, version, err)
	}
	return value, nil
}

func (a *AWS) get(ctx context.Context, in *secretsmanager.GetSecretValueInput) ([]byte, error) {
	out, err := a.client.GetSecretValue(ctx, in)
	if isNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if out.SecretBinary != nil {
		return out.SecretBinary, nil
	}
	if out.SecretString != nil {
		return []byte(*out.SecretString), nil
	}
	return nil, ErrNotFound
}

// Versions lists the version numbers of name, oldest first.
func (a *AWS) Versions(ctx context.Context, name string) ([]int, error) {
	ids, err := a.versionIDs(ctx, a.SecretID(name))
	if isNotFound(err) {
		return []int{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list versions of secret %s: %w", name, err)
	}
	versions := []int{}
	for _, id := range ids {
		if n, ok := parseAWSVersionID(id); ok {
			versions = append(versions, n)
		}
	}
	slices.Sort(versions)
	return slices.Compact(versions), nil
}

// versionIDs lists every VersionId of a secret, deprecated ones included.
// An endpoint without ListSecretVersionIds (some emulators) is answered from
// DescribeSecret instead, which on Secrets Manager itself would list only
// the versions that carry a staging label.
func (a *AWS) versionIDs(ctx context.Context, id string) ([]string, error) {
	var ids []string
	p := secretsmanager.NewListSecretVersionIdsPaginator(a.client, &secretsmanager.ListSecretVersionIdsInput{
		SecretId:          aws.String(id),
		IncludeDeprecated: aws.Bool(true),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if isCode(err, "InvalidAction", "UnknownOperationException") {
			out, err := a.client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
			if err != nil {
				return nil, err
			}
			ids = ids[:0]
			for vid := range out.VersionIdsToStages {
				ids = append(ids, vid)
			}
			return ids, nil
		}
		if err != nil {
			return nil, err
		}
		for _, v := range page.Versions {
			if v.VersionId != nil {
				ids = append(ids, *v.VersionId)
			}
		}
	}
	return ids, nil
}

// Delete removes name and every version at once, without the recovery
// window; a missing secret is not an error.
func (a *AWS) Delete(ctx context.Context, name string) error {
	_, err := a.client.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{
		SecretId:                   aws.String(a.SecretID(name)),
		ForceDeleteWithoutRecovery: aws.Bool(true),
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete secret %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool {
	var rnf *types.ResourceNotFoundException
	return errors.As(err, &rnf)
}

// isCode reports whether err is a Secrets Manager error with one of codes.
func isCode(err error, codes ...string) bool {
	var api smithy.APIError
	return errors.As(err, &api) && slices.Contains(codes, api.ErrorCode())
}
