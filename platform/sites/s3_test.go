package sites_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sivchari/kumo"

	"github.com/startupwebapp/platform/platform/pgtest"
	"github.com/startupwebapp/platform/platform/sites"
)

// kumoStart serialises kumo.NewServer: its services are process-wide
// singletons that every server wires up again (see platform/secrets).
var kumoStart sync.Mutex

// newS3 starts an in-process S3 emulator and returns a real SDK client on
// it and a bucket of the test's own.
func newS3(t *testing.T) (*s3.Client, string) {
	t.Helper()
	kumoStart.Lock()
	srv := kumo.NewServer()
	kumoStart.Unlock()
	t.Cleanup(srv.Close)
	client := s3.New(s3.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	bucket := strings.ReplaceAll(pgtest.RandomName("sites-"), "_", "-")
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	return client, bucket
}

func exists(t *testing.T, c *s3.Client, bucket, key string) bool {
	t.Helper()
	_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	return err == nil
}

// The S3 backend against the emulator: put, get, delete, a missing blob,
// and a whole deploy served from it whose garbage collection deletes the
// objects no version names.
func TestS3Blobs(t *testing.T) {
	t.Parallel()
	client, bucket := newS3(t)
	blobs := sites.NewS3Blobs(client, bucket, "sites/")
	ctx := context.Background()
	data := []byte("hello from s3")
	sum := sites.Sum(sha(data))
	if err := blobs.Put(ctx, 7, sum, data); err != nil {
		t.Fatal(err)
	}
	if err := blobs.Put(ctx, 7, sum, data); err != nil {
		t.Fatalf("second put: %v", err)
	}
	got, err := blobs.Get(ctx, 7, sum)
	if err != nil || string(got) != string(data) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if _, err := blobs.Get(ctx, 8, sum); !errors.Is(err, sites.ErrBlobNotFound) {
		t.Errorf("another tenant's get: %v, want ErrBlobNotFound", err)
	}
	if !exists(t, client, bucket, "sites/7/"+sum.Hex()) {
		t.Errorf("no object at sites/7/%s", sum.Hex())
	}
	if err := blobs.Delete(ctx, 7, sum); err != nil {
		t.Fatal(err)
	}
	if err := blobs.Delete(ctx, 7, sum); err != nil {
		t.Errorf("deleting a deleted blob: %v", err)
	}
	if _, err := blobs.Get(ctx, 7, sum); !errors.Is(err, sites.ErrBlobNotFound) {
		t.Errorf("get after delete: %v, want ErrBlobNotFound", err)
	}

	e := newEnv(t, envConfig{
		store: sites.Options{Blobs: blobs, Retain: 1},
		blobs: func(*pgxpool.Pool) sites.Blobs { return blobs },
	})
	v1 := files(t, "index.html", page("from s3"), "old.txt", "only in v1")
	e.deploy(t, e.acme, v1)
	if r := e.mustGet(t, "www.acme.test", "/", "Accept-Encoding", "br"); !strings.Contains(r.body, "from s3") || r.header.Get("Content-Encoding") != "br" {
		t.Errorf("served from S3: %.40q, encoding %q", r.body, r.header.Get("Content-Encoding"))
	}
	if n := count(t, e.pool, `SELECT count(*) FROM site_blob_data`); n != 0 {
		t.Errorf("%d blobs in the database with the S3 backend", n)
	}
	old := v1.Files[1].Sum
	if !exists(t, client, bucket, blobs.Key(e.acme, old)) {
		t.Fatal("old.txt is not in the bucket")
	}
	e.deploy(t, e.acme, files(t, "index.html", page("v2 from s3")))
	if exists(t, client, bucket, blobs.Key(e.acme, old)) {
		t.Error("old.txt is still in the bucket after its version was pruned")
	}
	if r := e.mustGet(t, "www.acme.test", "/"); !strings.Contains(r.body, "v2 from s3") {
		t.Errorf("after v2: %.40q", r.body)
	}
}
