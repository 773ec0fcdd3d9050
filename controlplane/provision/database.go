package provision

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/startupwebapp/platform/controlplane/registry"
	"github.com/startupwebapp/platform/migrations"
)

// server is an open admin connection to one database server.
type server struct {
	info registry.DBServer
	cfg  *pgx.ConnConfig // admin connection settings; holds a secret
	conn *pgx.Conn
}

func (sv *server) close() {
	if sv.conn != nil {
		sv.conn.Close(context.Background())
	}
}

// lookup reads the database server with id and its admin settings, without
// connecting.
func (s *Service) lookup(ctx context.Context, serverID *int64) (*server, error) {
	if serverID == nil {
		return nil, errors.New("tenant has no database server")
	}
	info, err := s.reg.DBServerByID(ctx, *serverID)
	if err != nil {
		return nil, err
	}
	dsn, err := s.reg.AdminDSN(ctx, info)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// The parser's message may quote the connection string.
		return nil, fmt.Errorf("db server %s: admin connection string does not parse", info.Name)
	}
	return &server{info: info, cfg: cfg}, nil
}

// connect opens an admin connection to the database server with id.
func (s *Service) connect(ctx context.Context, serverID *int64) (*server, error) {
	sv, err := s.lookup(ctx, serverID)
	if err != nil {
		return nil, err
	}
	if sv.conn, err = pgx.ConnectConfig(ctx, sv.cfg); err != nil {
		return nil, fmt.Errorf("db server %s: connect: %w", sv.info.Name, err)
	}
	return sv, nil
}

// as returns connection settings for database db on the server as user
// (with password; empty keeps the admin's credentials).
func (sv *server) as(db, user, password string) *pgx.ConnConfig {
	c := sv.cfg.Copy()
	c.Database = db
	if user != "" {
		c.User, c.Password = user, password
	}
	return c
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// SCRAMIterations is the PBKDF2 iteration count of the tenant roles'
// SCRAM verifiers. Both ends of every login run that many HMAC rounds (the
// data plane to prove the password, Postgres to check it), and under a
// connection budget far below the tenant count logins are frequent. The
// iterations only slow a brute force of a stolen verifier, which for these
// passwords (32 random bytes, never chosen by a person) is out of reach at
// any count, so the count is low rather than Postgres' default 4096 (RFC
// 7677's advice for human passwords). Roles keep the count they were given
// until their password is next set (rotation).
const SCRAMIterations = 64

// scramVerifier returns the SCRAM-SHA-256 verifier Postgres stores for
// password, so CREATE/ALTER ROLE never carries the password itself (nor puts
// it in the server's statement log).
func scramVerifier(password string) (string, error) {
	return SCRAMVerifier(password, SCRAMIterations)
}

// SCRAMVerifier returns the SCRAM-SHA-256 verifier of password with the
// given iteration count, in the form pg_authid stores.
func SCRAMVerifier(password string, iterations int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(storedKey[:]), enc(serverKey)), nil
}

// ensureRole creates the tenant's login role, or resets its password and
// attributes when it exists, so a crashed run converges on the stored secret.
func ensureRole(ctx context.Context, admin *pgx.Conn, role, password string) error {
	verifier, err := scramVerifier(password)
	if err != nil {
		return fmt.Errorf("role %s: hash password: %w", role, err)
	}
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, role).Scan(&exists); err != nil {
		return fmt.Errorf("role %s: %w", role, err)
	}
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	stmt := fmt.Sprintf("%s ROLE %s WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %s",
		verb, ident(role), literal(verifier))
	if _, err := admin.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("role %s: %s: %w", role, strings.ToLower(verb), err)
	}
	// An admin that is not a superuser (a managed database's admin) must be a
	// member of the role to create a database it owns and to hand it objects.
	var super bool
	if err := admin.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super); err != nil {
		return fmt.Errorf("role %s: %w", role, err)
	}
	if !super {
		if _, err := admin.Exec(ctx, fmt.Sprintf("GRANT %s TO CURRENT_USER", ident(role))); err != nil {
			return fmt.Errorf("role %s: grant to admin: %w", role, err)
		}
	}
	return nil
}

// setPassword changes a role's password.
func setPassword(ctx context.Context, admin *pgx.Conn, role, password string) error {
	verifier, err := scramVerifier(password)
	if err != nil {
		return fmt.Errorf("role %s: hash password: %w", role, err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER ROLE %s WITH PASSWORD %s", ident(role), literal(verifier))); err != nil {
		return fmt.Errorf("role %s: set password: %w", role, err)
	}
	return nil
}

func databaseExists(ctx context.Context, admin *pgx.Conn, name string) (bool, error) {
	var exists bool
	err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists)
	return exists, err
}

// ensureDatabase creates the tenant database from the template (owner: the
// tenant role), lets only that role connect, and hands it every object the
// clone brought along. Each part is idempotent.
// at is the workflow's crash hook (see Options.InStep).
func (s *Service) ensureDatabase(ctx context.Context, sv *server, db, role string,
	at func(ctx context.Context, step, point string) error) error {
	exists, err := databaseExists(ctx, sv.conn, db)
	if err != nil {
		return fmt.Errorf("database %s: %w", db, err)
	}
	if !exists {
		tpl, err := s.ensureTemplate(ctx, sv)
		if err != nil {
			return err
		}
		if err := at(ctx, StepDatabase, PointTemplate); err != nil {
			return err
		}
		// CREATE DATABASE cannot run in a transaction; it is atomic by itself.
		stmt := fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s OWNER %s", ident(db), ident(tpl), ident(role))
		if _, err := sv.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("database %s: create: %w", db, err)
		}
		if err := at(ctx, StepDatabase, PointCreated); err != nil {
			return err
		}
	}
	for _, stmt := range []string{
		fmt.Sprintf("ALTER DATABASE %s OWNER TO %s", ident(db), ident(role)),
		fmt.Sprintf("REVOKE ALL ON DATABASE %s FROM PUBLIC", ident(db)),
		fmt.Sprintf("GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s", ident(db), ident(role)),
	} {
		if _, err := sv.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("database %s: privileges: %w", db, err)
		}
	}
	conn, err := pgx.ConnectConfig(ctx, sv.as(db, "", ""))
	if err != nil {
		return fmt.Errorf("database %s: connect as admin: %w", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `SELECT set_config('swa.owner', $1, false)`, role); err != nil {
		return fmt.Errorf("database %s: ownership: %w", db, err)
	}
	if _, err := conn.Exec(ctx, reassignSQL); err != nil {
		return fmt.Errorf("database %s: ownership: %w", db, err)
	}
	if _, err := conn.Exec(ctx, "REVOKE ALL ON SCHEMA public FROM PUBLIC"); err != nil {
		return fmt.Errorf("database %s: schema privileges: %w", db, err)
	}
	return nil
}

// reassignSQL gives the role named by the setting swa.owner every schema,
// relation, routine and type of the current database outside the system
// schemas. Objects cloned from a template belong to the template's owner;
// REASSIGN OWNED cannot be used because that owner is usually the bootstrap
// superuser, whose system objects cannot change hands. Sequences and indexes
// that belong to a table follow it; extension members are left alone.
const reassignSQL = `DO $$
DECLARE
    owner text := current_setting('swa.owner');
    r record;
BEGIN
    FOR r IN
        SELECT format('ALTER SCHEMA %I OWNER TO %I', n.nspname, owner) AS stmt
        FROM pg_namespace n
        WHERE n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
          AND pg_get_userbyid(n.nspowner) <> owner
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO %I',
                   CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                  WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
                   c.oid::regclass, owner)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
          AND pg_get_userbyid(c.relowner) <> owner
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i', 'e'))
        UNION ALL
        SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, owner)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE p.prokind <> 'a' AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
          AND pg_get_userbyid(p.proowner) <> owner
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
        UNION ALL
        SELECT format('ALTER %s %s OWNER TO %I', CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, t.oid::regtype, owner)
        FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
        WHERE (t.typtype IN ('e', 'd', 'r')
               OR (t.typtype = 'c' AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind = 'c')))
          AND n.nspname NOT LIKE 'pg\_%' AND n.nspname <> 'information_schema'
          AND pg_get_userbyid(t.typowner) <> owner
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
    LOOP
        EXECUTE r.stmt;
    END LOOP;
END
$$`

// ensureTemplate returns the template database at the newest tenant
// migration on the server, building it when missing. Builders on several
// control-plane replicas take turns under an advisory lock; a half-built
// template (a crash mid-build) is dropped and built again. Older templates of
// the same prefix are dropped once the new one is ready.
func (s *Service) ensureTemplate(ctx context.Context, sv *server) (string, error) {
	name := s.template
	var isTemplate bool
	err := sv.conn.QueryRow(ctx, `SELECT datistemplate FROM pg_database WHERE datname = $1`, name).Scan(&isTemplate)
	if err == nil && isTemplate {
		return name, nil
	}
	lockKey := "swa:template:" + s.opts.DBPrefix
	if _, err := sv.conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext($1))`, lockKey); err != nil {
		return "", fmt.Errorf("template %s: lock: %w", name, err)
	}
	defer sv.conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtext($1))`, lockKey) //nolint:errcheck

	err = sv.conn.QueryRow(ctx, `SELECT datistemplate FROM pg_database WHERE datname = $1`, name).Scan(&isTemplate)
	switch {
	case err == nil && isTemplate:
		return name, nil
	case err == nil:
		if _, err := sv.conn.Exec(ctx, "DROP DATABASE "+ident(name)+" WITH (FORCE)"); err != nil {
			return "", fmt.Errorf("template %s: drop half-built: %w", name, err)
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	s.log.Info("building tenant template database", "template", name, "server", sv.info.Name, "version", s.latest)
	if _, err := sv.conn.Exec(ctx, "CREATE DATABASE "+ident(name)); err != nil {
		return "", fmt.Errorf("template %s: create: %w", name, err)
	}
	db := stdlib.OpenDB(*sv.as(name, "", ""))
	_, err = migrations.UpFS(ctx, db, s.tenantFS)
	db.Close()
	if err != nil {
		return "", fmt.Errorf("template %s: %w", name, err)
	}
	// A template that accepts connections makes CREATE DATABASE ... TEMPLATE
	// fail whenever someone is connected to it.
	for _, stmt := range []string{
		"REVOKE ALL ON DATABASE " + ident(name) + " FROM PUBLIC",
		"ALTER DATABASE " + ident(name) + " WITH ALLOW_CONNECTIONS false IS_TEMPLATE true",
	} {
		if _, err := sv.conn.Exec(ctx, stmt); err != nil {
			return "", fmt.Errorf("template %s: %w", name, err)
		}
	}
	s.dropOldTemplates(ctx, sv)
	return name, nil
}

// dropOldTemplates removes templates of earlier migration versions; a
// failure (an old control plane cloning from one right now) is only logged.
func (s *Service) dropOldTemplates(ctx context.Context, sv *server) {
	prefix := s.opts.DBPrefix + "_template_"
	rows, err := sv.conn.Query(ctx, `SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1 AND datname <> $2`,
		prefix, s.template)
	if err != nil {
		s.log.Warn("listing old templates", "err", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		s.log.Warn("listing old templates", "err", err)
		return
	}
	for _, n := range names {
		_, err := sv.conn.Exec(ctx, "ALTER DATABASE "+ident(n)+" WITH IS_TEMPLATE false")
		if err == nil {
			_, err = sv.conn.Exec(ctx, "DROP DATABASE "+ident(n)+" WITH (FORCE)")
		}
		if err != nil {
			s.log.Warn("dropping old template", "template", n, "err", err)
		}
	}
}

// dropDatabase ends every session on the tenant database and drops it and
// its role; missing ones are fine. at is the workflow's crash hook.
func dropDatabase(ctx context.Context, admin *pgx.Conn, db, role string,
	at func(ctx context.Context, step, point string) error) error {
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, db); err != nil {
		return fmt.Errorf("database %s: terminate sessions: %w", db, err)
	}
	if err := at(ctx, StepDrop, PointSessionsEnded); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(db)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("database %s: drop: %w", db, err)
	}
	if err := at(ctx, StepDrop, PointDatabaseDropped); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, "DROP ROLE IF EXISTS "+ident(role)); err != nil {
		return fmt.Errorf("role %s: drop: %w", role, err)
	}
	return at(ctx, StepDrop, PointRoleDropped)
}
