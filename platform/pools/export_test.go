package pools

// BudgetWaiters is the number of dials queued for a budget slot, so tests
// can wait until a dial has queued instead of sleeping and hoping.
func (m *Manager) BudgetWaiters() int {
	m.budget.mu.Lock()
	defer m.budget.mu.Unlock()
	return len(m.budget.waiters)
}
