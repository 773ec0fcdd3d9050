package migrations

// Internals the external tests need: the lock to hold it themselves, the
// ledger to drive goose directly (down migrations).
const (
	LockID      = lockID
	LedgerTable = ledgerTable
)
