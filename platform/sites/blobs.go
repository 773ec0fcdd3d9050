package sites

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Blobs keeps the bytes of a tenant's site files, named by their SHA-256.
// Put of a blob already there and Delete of one that is not are no-ops, so
// a deploy or a garbage collection cut off anywhere can simply run again.
type Blobs interface {
	Put(ctx context.Context, tenantID int64, sum Sum, data []byte) error
	// Get returns ErrBlobNotFound (wrapped) for a blob that is not there.
	Get(ctx context.Context, tenantID int64, sum Sum) ([]byte, error)
	Delete(ctx context.Context, tenantID int64, sum Sum) error
}

// ErrBlobNotFound is a blob missing from its backend.
var ErrBlobNotFound = errors.New("site blob not found")

// DB is what the database backend and the Store run queries on: a
// *pgxpool.Pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// DBBlobs keeps blobs in the platform database (site_blob_data), the
// default backend. The data plane reads them through its SELECT-only role.
type DBBlobs struct{ db DB }

// NewDBBlobs returns the database backend on db.
func NewDBBlobs(db DB) *DBBlobs { return &DBBlobs{db: db} }

// Put stores data under sum.
func (b *DBBlobs) Put(ctx context.Context, tenantID int64, sum Sum, data []byte) error {
	const q = `INSERT INTO site_blob_data (tenant_id, sha256, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	if _, err := b.db.Exec(ctx, q, tenantID, sum[:], data); err != nil {
		return fmt.Errorf("put site blob %s: %w", sum.Hex(), err)
	}
	return nil
}

// Get reads the blob sum.
func (b *DBBlobs) Get(ctx context.Context, tenantID int64, sum Sum) ([]byte, error) {
	const q = `SELECT data FROM site_blob_data WHERE tenant_id = $1 AND sha256 = $2`
	var data []byte
	err := b.db.QueryRow(ctx, q, tenantID, sum[:]).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("get site blob %s: %w", sum.Hex(), ErrBlobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get site blob %s: %w", sum.Hex(), err)
	}
	return data, nil
}

// Delete removes the blob sum.
func (b *DBBlobs) Delete(ctx context.Context, tenantID int64, sum Sum) error {
	const q = `DELETE FROM site_blob_data WHERE tenant_id = $1 AND sha256 = $2`
	if _, err := b.db.Exec(ctx, q, tenantID, sum[:]); err != nil {
		return fmt.Errorf("delete site blob %s: %w", sum.Hex(), err)
	}
	return nil
}

// s3CallTimeout bounds one S3 call, so a hung endpoint cannot hold a
// deploy or a request forever; callers' deadlines still apply.
const s3CallTimeout = time.Minute

// NewS3Client returns an S3 client from the default AWS configuration
// (environment, shared files, instance role), with a deadline on every call.
// A non-empty endpoint (emulators only) is addressed path-style.
func NewS3Client(ctx context.Context, endpoint string, optFns ...func(*config.LoadOptions) error) (*s3.Client, error) {
	opts := append([]func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(s3CallTimeout)),
	}, optFns...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("sites s3: load configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("sites s3: no region (set AWS_REGION)")
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	}), nil
}

// S3Blobs keeps blobs in an S3 bucket, as objects {prefix}{tenant id}/{sha256
// hex}. The control plane needs PutObject, GetObject and DeleteObject on
// the prefix; the data plane GetObject only.
type S3Blobs struct {
	client *s3.Client
	bucket string
	prefix string
}

// NewS3Blobs returns the S3 backend on bucket, object names starting with
// prefix (e.g. "sites/").
func NewS3Blobs(client *s3.Client, bucket, prefix string) *S3Blobs {
	return &S3Blobs{client: client, bucket: bucket, prefix: prefix}
}

// Key is the object name of a blob.
func (b *S3Blobs) Key(tenantID int64, sum Sum) string {
	return b.prefix + strconv.FormatInt(tenantID, 10) + "/" + sum.Hex()
}

// Put uploads data under sum.
func (b *S3Blobs) Put(ctx context.Context, tenantID int64, sum Sum, data []byte) error {
	_, err := b.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(b.Key(tenantID, sum)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return fmt.Errorf("put site blob %s: %w", sum.Hex(), err)
	}
	return nil
}

// Get downloads the blob sum and checks it is what its name says.
func (b *S3Blobs) Get(ctx context.Context, tenantID int64, sum Sum) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.Key(tenantID, sum))})
	if err != nil {
		var nsk *s3types.NoSuchKey
		if errors.As(err, &nsk) {
			return nil, fmt.Errorf("get site blob %s: %w", sum.Hex(), ErrBlobNotFound)
		}
		return nil, fmt.Errorf("get site blob %s: %w", sum.Hex(), err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		return nil, fmt.Errorf("get site blob %s: %w", sum.Hex(), err)
	}
	if sumOf(data) != sum {
		return nil, fmt.Errorf("get site blob %s: content does not match its name", sum.Hex())
	}
	return data, nil
}

// Delete removes the blob sum (S3 answers a missing key with success).
func (b *S3Blobs) Delete(ctx context.Context, tenantID int64, sum Sum) error {
	_, err := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.Key(tenantID, sum))})
	if err != nil {
		return fmt.Errorf("delete site blob %s: %w", sum.Hex(), err)
	}
	return nil
}
