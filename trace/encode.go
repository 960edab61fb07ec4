package trace

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/udt-go/udt"
)

// The encoders append to a buffer with strconv: no reflection, no
// allocation once the buffer has grown. Keys come quoted with their
// comma and colon, as constants.

// appendHeader appends the header line.
func appendHeader(b []byte, info udt.TraceInfo, opts Options) []byte {
	b = append(b, `{"format":`...)
	b = appendString(b, Format)
	b = append(b, `,"role":`...)
	b = appendString(b, info.Role.String())
	b = append(b, `,"socket_id":`...)
	b = strconv.AppendUint(b, uint64(info.SocketID), 10)
	b = append(b, `,"local":`...)
	b = appendString(b, addrString(info.LocalAddr))
	b = append(b, `,"remote":`...)
	b = appendString(b, addrString(info.RemoteAddr))
	b = append(b, `,"start":`...)
	b = appendString(b, info.Start.UTC().Format(time.RFC3339Nano))
	if opts.NoPackets {
		b = append(b, `,"no_packets":true`...)
	}
	return append(b, "}\n"...)
}

func addrString(a interface{ String() string }) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// appendEvent appends e's line: t, ev, then the fields of its kind.
func appendEvent(b []byte, e *Event) []byte {
	b = append(b, `{"t":`...)
	b = strconv.AppendInt(b, int64(e.T/time.Microsecond), 10)
	b = append(b, `,"ev":"`...)
	b = append(b, e.Kind.String()...)
	b = append(b, '"')
	switch e.Kind {
	case HandshakeSent, HandshakeReceived:
		b = appendHandshake(b, e)
	case Phase:
		b = append(b, `,"from":`...)
		b = appendString(b, e.From.String())
		b = append(b, `,"to":`...)
		b = appendString(b, e.To.String())
	case PacketSent, PacketReceived:
		b = appendUint(b, `,"seq":`, e.Seq)
		b = appendUint(b, `,"msg":`, e.Msg)
		b = appendInt(b, `,"size":`, e.Size)
		if e.Retransmit {
			b = append(b, `,"retransmit":true`...)
		}
		b = appendStr(b, `,"discarded":`, e.Discarded)
	case PacketsLost:
		b = appendUint(b, `,"first":`, e.First)
		b = appendUint(b, `,"last":`, e.Last)
		b = appendStr(b, `,"reason":`, e.Reason)
	case ControlSent, ControlReceived:
		b = appendControl(b, e)
	case Metrics:
		b = appendMetrics(b, e)
	case Timeout:
		b = appendInt(b, `,"count":`, e.Count)
		b = appendInt(b, `,"unacked":`, e.Unacked)
	case Closed:
		b = appendStr(b, `,"by":`, e.By)
		b = appendStr(b, `,"error":`, e.Error)
		b = appendInt(b, `,"unacked":`, e.Unacked)
	}
	return append(b, "}\n"...)
}

func appendHandshake(b []byte, e *Event) []byte {
	b = appendUint(b, `,"version":`, e.Version)
	b = append(b, `,"socket_type":`...)
	b = appendString(b, e.SocketType.String())
	b = appendUint(b, `,"isn":`, e.ISN)
	b = appendInt(b, `,"mss":`, e.MSS)
	b = appendInt(b, `,"flow_window":`, e.FlowWindow)
	b = appendInt(b, `,"req_type":`, e.ReqType)
	b = appendUint(b, `,"socket_id":`, e.SocketID)
	return appendUint(b, `,"cookie":`, e.Cookie)
}

func appendControl(b []byte, e *Event) []byte {
	b = appendStr(b, `,"type":`, e.Type)
	b = appendUint(b, `,"ack_no":`, e.AckNo)
	b = appendUint(b, `,"seq":`, e.Seq)
	b = appendUint(b, `,"last":`, e.Last)
	b = appendUint(b, `,"msg":`, e.Msg)
	b = appendDur(b, `,"rtt":`, e.RTT)
	b = appendDur(b, `,"rtt_var":`, e.RTTVar)
	b = appendInt(b, `,"window":`, e.Window)
	b = appendInt(b, `,"recv_rate":`, e.RecvRate)
	b = appendInt(b, `,"bandwidth":`, e.Bandwidth)
	if len(e.Loss) > 0 {
		b = append(b, `,"loss":[`...)
		for i, r := range e.Loss {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '[')
			b = strconv.AppendUint(b, uint64(r.First), 10)
			b = append(b, ',')
			b = strconv.AppendUint(b, uint64(r.Last), 10)
			b = append(b, ']')
		}
		b = append(b, ']')
	}
	return b
}

func appendMetrics(b []byte, e *Event) []byte {
	b = appendDur(b, `,"rtt":`, e.RTT)
	b = appendDur(b, `,"rtt_var":`, e.RTTVar)
	b = appendDur(b, `,"period":`, e.Period)
	b = appendInt(b, `,"window":`, e.Window)
	b = appendInt(b, `,"flow_window":`, e.FlowWindow)
	b = appendInt(b, `,"in_flight":`, e.InFlight)
	b = appendInt(b, `,"recv_rate":`, e.RecvRate)
	return appendInt(b, `,"bandwidth":`, e.Bandwidth)
}

// appendUint appends key and v, unless v is zero.
func appendUint(b []byte, key string, v uint32) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendUint(append(b, key...), uint64(v), 10)
}

// appendInt appends key and v, unless v is zero.
func appendInt[I int | int32](b []byte, key string, v I) []byte {
	if v == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(v), 10)
}

// appendDur appends key and d in whole microseconds, unless that is zero.
func appendDur(b []byte, key string, d time.Duration) []byte {
	us := int64(d / time.Microsecond)
	if us == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), us, 10)
}

// appendStr appends key and s, unless s is empty.
func appendStr(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendString appends s as a JSON string. Bytes that are not UTF-8
// become U+FFFD, as encoding/json writes them.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || n != 1 {
				i += n
				continue
			}
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, `\n`...)
		case '\t':
			b = append(b, `\t`...)
		default:
			if c < 0x20 {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			} else {
				b = append(b, `\ufffd`...)
			}
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
