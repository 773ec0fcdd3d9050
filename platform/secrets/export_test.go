package secrets

// Cached reports the value the cache holds for name, without reading the
// backend: tests wait on it for a background read to land.
func (c *Cache) Cached(name string) ([]byte, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e := c.entries[name]; e != nil && e.value != nil {
		return clone(e.value), true
	}
	return nil, false
}
