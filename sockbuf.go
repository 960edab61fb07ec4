package udt

// bufferSizes are a socket's receive and send buffer sizes in bytes.
type bufferSizes struct{ rcv, snd int }

// growBuffersLocked raises the socket's receive and send buffers, if it
// is a *net.UDPConn, to cfg's UDPReceiveBuffer and UDPSendBuffer where
// they are smaller: for a listener or dial joining a socket that others
// use, or a Transport's (the caller's socket). The default receive buffer
// of a system (about 200 KB on Linux) holds a few milliseconds of a fast
// flow, and the datagrams beyond it are lost. It never lowers a buffer:
// it compares with the sizes the kernel reports (see socketBuffers) or,
// where it cannot say, with those last set here. registry.mu held.
func (m *multiplexer) growBuffersLocked(cfg *Config) {
	uc, ok := m.conn.(udpConn)
	if !ok {
		return
	}
	rcv, snd, known := socketBuffers(uc.c)
	if !known {
		rcv, snd = m.bufs.rcv, m.bufs.snd
	}
	if want := cfg.UDPReceiveBuffer; want > rcv && want > m.bufs.rcv {
		_ = uc.c.SetReadBuffer(want)
		m.bufs.rcv = want
	}
	if want := cfg.UDPSendBuffer; want > snd && want > m.bufs.snd {
		_ = uc.c.SetWriteBuffer(want)
		m.bufs.snd = want
	}
}
