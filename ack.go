package herd

// ack.go: when a node answers an IAMAT (Config.Ack), and the session's side
// of the durable mode: a session notes how far the state log must be on
// disk for the replies it holds; its writer (ackwriter.go) waits for that
// before writing them.

import (
	"fmt"
	"strings"
)

// Ack says when a node answers an IAMAT with its AT line.
type Ack int

const (
	// AckTable answers as soon as the node's table holds the report (the
	// default). With a StateFile the report is also appended to the state
	// log, which is written at once and fsynced every StateInterval: a
	// crash of the process loses what was not yet written (a few
	// milliseconds), a crash of the machine up to StateInterval more, as
	// Redis's "appendfsync everysec".
	AckTable Ack = iota
	// AckDurable answers only once the report, or the newer record the
	// reply carries, is in the state log on disk, fsynced. Replies that
	// wait at the same moment share one fsync (group commit), so a
	// pipelining client gets many replies per fsync. Needs StateFile.
	AckDurable
)

// String returns "table" or "durable", the names ParseAck takes.
func (a Ack) String() string {
	switch a {
	case AckTable:
		return "table"
	case AckDurable:
		return "durable"
	}
	return fmt.Sprintf("Ack(%d)", int(a))
}

// ParseAck parses "table" or "durable" (any case).
func ParseAck(s string) (Ack, error) {
	switch strings.ToLower(s) {
	case "table":
		return AckTable, nil
	case "durable":
		return AckDurable, nil
	}
	return 0, fmt.Errorf("%q is not an ack mode (want table or durable)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (a Ack) MarshalText() ([]byte, error) {
	if a != AckTable && a != AckDurable {
		return nil, fmt.Errorf("herd: %v is not an ack mode", a)
	}
	return []byte(a.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParseAck.
func (a *Ack) UnmarshalText(text []byte) error {
	v, err := ParseAck(string(text))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// noteAck records, in durable mode, that the session's pending replies
// need the log on disk up to where it ends now. Called after each offer of
// a client's report: the record the reply carries, whether the report or
// a newer one already stored, was appended under the node's lock when it
// entered the table, so the end read here is at or past it.
func (s *session) noteAck() {
	if w := s.n.wal; w != nil && w.durable {
		s.ackPos = w.endPos.Load()
	}
}
