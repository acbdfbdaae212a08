package herd

// shutdown.go: what Close waits for, so that a report the node has
// acknowledged reaches every neighbour whose link was up.

// awaitClientsGone waits until no client connection is open (every
// session has answered what it had read), or grace is closed.
func (n *Node) awaitClientsGone(grace <-chan struct{}) { n.awaitNone(false, grace) }

// awaitNone waits until no connection is open that is a peer link (peer)
// or not (!peer), or grace is closed.
func (n *Node) awaitNone(peer bool, grace <-chan struct{}) {
	for {
		n.stateMu.Lock()
		left := 0
		for _, st := range n.conns {
			if st.peer.Load() == peer {
				left++
			}
		}
		if left == 0 {
			n.stateMu.Unlock()
			return
		}
		if n.untracked == nil {
			n.untracked = make(chan struct{})
		}
		ch := n.untracked
		n.stateMu.Unlock()
		select {
		case <-ch:
		case <-grace:
			return
		}
	}
}

// awaitLinksDrained waits until every up link has written everything it
// owes, or grace is closed.
func (n *Node) awaitLinksDrained(grace <-chan struct{}) {
	n.flushWakes()
	for {
		n.mu.Lock()
		busy := false
		for _, l := range n.links {
			if l.busy || len(l.pending) > 0 || l.owed.len() > 0 || len(l.pushes) > 0 {
				busy = true
				break
			}
		}
		if !busy {
			n.mu.Unlock()
			return
		}
		if n.linkIdle == nil {
			n.linkIdle = make(chan struct{})
		}
		ch := n.linkIdle
		n.mu.Unlock()
		select {
		case <-ch:
		case <-grace:
			return
		}
	}
}

// writerIdle records that l's writer has written what it took, and wakes
// awaitLinksDrained. Called with n.mu held.
func (n *Node) writerIdle(l *link) {
	l.busy = false
	if n.linkIdle != nil {
		close(n.linkIdle)
		n.linkIdle = nil
	}
}

// closeLinks half-closes every link once drained, and waits until the
// neighbours have closed their side (or grace is closed): a connection
// closed with input unread is reset, and a reset can destroy records the
// neighbour has received but not yet read.
func (n *Node) closeLinks(grace <-chan struct{}) {
	n.stateMu.Lock()
	for c, st := range n.conns {
		if !st.peer.Load() {
			continue
		}
		if cw, ok := c.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
			c.Close()
		}
	}
	n.stateMu.Unlock()
	n.awaitNone(true, grace)
}
