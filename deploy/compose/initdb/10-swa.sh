#!/bin/bash
# Runs once, when the postgres container starts on an empty volume: the same
# role and database as deploy/dev/stack creates on the local cluster.
set -euo pipefail

psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
	-v swapw="$SWA_DB_PASSWORD" -v readerpw="$SWA_READER_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE swa LOGIN CREATEDB CREATEROLE'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'swa') \gexec
ALTER ROLE swa WITH LOGIN CREATEDB CREATEROLE PASSWORD :'swapw';
SELECT 'CREATE DATABASE swa_platform OWNER swa'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'swa_platform') \gexec
SELECT 'CREATE ROLE swa_dataplane NOLOGIN'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'swa_dataplane') \gexec
SELECT 'CREATE ROLE swa_reader LOGIN'
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'swa_reader') \gexec
ALTER ROLE swa_reader WITH LOGIN PASSWORD :'readerpw';
GRANT swa_dataplane TO swa_reader;
-- Tenant logins reach their own database only: not the maintenance ones.
REVOKE CONNECT, TEMPORARY ON DATABASE postgres, template1 FROM PUBLIC;
SQL
