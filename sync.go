package herd

// sync.go: link-up reconciliation. When a link comes up the dialer sends
// the fingerprints of the top ranges of its table (see summary.go); each
// side answers every SUM by comparing it with its own fingerprints:
//
//   - equal ranges are done;
//   - a range empty on the other side is pushed to it whole; a range
//     empty here is asked for with PUSH;
//   - a small range (or a leaf) is settled with HAVE, the hashes of this
//     side's records there: the other side sends the records missing from
//     the list and asks with WANT for the ones it lacks;
//   - any other range is split: SUM with the fingerprints of its children.
//
// Every answer goes one level down or ends, so a link-up takes at most
// topLevel+2 exchanges, and the records sent are those in ranges that
// differ. Records that change meanwhile are flooded as usual, so nothing
// a reconciliation misses by racing a change is lost.

import (
	"errors"
	"log/slog"
)

// smallRange is the combined record count under which a range is settled
// with HAVE rather than split further.
const smallRange = 16

// maxSyncLines bounds the sync lines one link may send: an honest
// link-up sends at most one per range at each level and a HAVE and a
// WANT per leaf. Beyond it, sync lines are refused like bad records.
const maxSyncLines = 4 * numLeaves

// childPrints returns this table's fingerprints of the fan children of
// range p at level l. Called with n.mu held.
func (n *Node) childPrints(l, p int) []fingerprint {
	fps := make([]fingerprint, fan)
	for c := range fps {
		fps[c] = n.table.sum.get(l+1, p*fan+c)
	}
	return fps
}

// syncLine handles one sync line from l's neighbour.
func (n *Node) syncLine(l *link, line []byte, f *fieldList, nf int) {
	m, err := parseSync(f, nf)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err == nil && l.syncIn >= maxSyncLines {
		err = errSyncBudget
	}
	if err != nil {
		n.stats.syncRefused++
		n.log.LogAttrs(n.ctx, slog.LevelWarn, "bad sync line from peer", slog.String("conn", l.s.id), slog.String("peer", l.peer), slog.String("why", err.Error()), slog.String("line", truncate(line, 120)))
		return
	}
	l.syncIn++
	n.stats.syncLines++
	switch m.verb {
	case verbSum:
		for c, theirs := range m.fps {
			n.compareRange(l, m.level, m.index*fan+c, theirs)
		}
	case verbPush:
		n.pushRange(l, m.level, m.index)
	case verbHave:
		n.answerHave(l, m)
	case verbWant:
		n.answerWant(l, m)
	}
}

// errSyncBudget refuses sync lines past maxSyncLines.
var errSyncBudget = errors.New("more sync lines than a link-up needs")

// truncate returns the first max bytes of line, for logs.
func truncate(line []byte, max int) string {
	if len(line) > max {
		return string(line[:max]) + "..."
	}
	return string(line)
}

// compareRange answers the neighbour's fingerprint of range i at level
// lvl. Called with n.mu held.
func (n *Node) compareRange(l *link, lvl, i int, theirs fingerprint) {
	mine := n.table.sum.get(lvl, i)
	switch {
	case theirs == mine:
	case theirs.count == 0:
		n.pushRange(l, lvl, i)
	case mine.count == 0:
		n.queueSync(l, appendPush(nil, lvl, i))
	case lvl == topLevel || theirs.count+mine.count <= smallRange:
		if mine.count > maxIDs {
			n.pushRange(l, lvl, i)
			n.queueSync(l, appendPush(nil, lvl, i))
			return
		}
		n.queueSync(l, appendIDs(nil, verbHave, lvl, i, n.rangeIDs(lvl, i, nil)))
	default:
		n.queueSync(l, appendSum(nil, lvl+1, i, n.childPrints(lvl, i)))
	}
}

// rangeIDs calls f, if not nil, with each client in range i of level
// lvl, and returns the hashes of their lines in slot order. Called with
// n.mu held, for ranges of at most maxIDs clients.
func (n *Node) rangeIDs(lvl, i int, f func(p pos, h, id uint64)) []uint64 {
	var ids []uint64
	lo, hi := leaves(lvl, i)
	n.table.eachInLeaves(lo, hi, func(p pos, h uint64) {
		id := n.table.slotAt(p).item
		ids = append(ids, id)
		if f != nil {
			f(p, h, id)
		}
	})
	return ids
}

// answerHave sends the records of a range that the neighbour's list
// lacks, and asks for the ones this table lacks. Called with n.mu held.
func (n *Node) answerHave(l *link, m syncLine) {
	if n.table.sum.get(m.level, m.index).count > maxIDs {
		// More here than a HAVE can list: settle the range whole.
		n.pushRange(l, m.level, m.index)
		n.queueSync(l, appendPush(nil, m.level, m.index))
		return
	}
	theirs := make(map[uint64]bool, len(m.ids))
	for _, id := range m.ids {
		theirs[id] = true
	}
	mine := n.rangeIDs(m.level, m.index, func(p pos, h, id uint64) {
		if !theirs[id] {
			n.queue(l, p, h, "")
		}
	})
	held := make(map[uint64]bool, len(mine))
	for _, id := range mine {
		held[id] = true
	}
	var want []uint64
	for _, id := range m.ids { // the neighbour's order, not a map's
		if !held[id] {
			want = append(want, id)
		}
	}
	if len(want) > 0 {
		n.queueSync(l, appendIDs(nil, verbWant, m.level, m.index, want))
	}
}

// answerWant sends the records of a range whose line hashes the
// neighbour asked for and that are still the newest here. Called with
// n.mu held.
func (n *Node) answerWant(l *link, m syncLine) {
	if n.table.sum.get(m.level, m.index).count > maxIDs {
		n.pushRange(l, m.level, m.index)
		return
	}
	want := make(map[uint64]bool, len(m.ids))
	for _, id := range m.ids {
		want[id] = true
	}
	n.rangeIDs(m.level, m.index, func(p pos, h, id uint64) {
		if want[id] {
			n.queue(l, p, h, "")
		}
	})
}

// hashFIFO is a growable ring of client hashes, with no pointers for the
// collector to scan.
type hashFIFO struct {
	buf        []uint64
	head, size int
}

func (q *hashFIFO) len() int { return q.size }

func (q *hashFIFO) push(h uint64) {
	if q.size == len(q.buf) {
		nb := make([]uint64, max(64, 2*len(q.buf)))
		for i := range q.size {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = h
	q.size++
}

func (q *hashFIFO) pop() uint64 {
	h := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	if q.size == 0 && len(q.buf) > 1024 {
		q.buf, q.head = nil, 0 // a drained backlog gives its memory back
	}
	return h
}
