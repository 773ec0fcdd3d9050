package migrations

// LockID lets the external tests hold the migration lock themselves.
const LockID = lockID
