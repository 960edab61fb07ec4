package udt

// MSSOf returns the MSS c settled on in its handshake, for the public-API
// tests.
func MSSOf(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mss
}
