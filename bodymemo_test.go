package herd

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"sync"
	"testing"
)

// memoDoc is a small legacy document with n results, different for each
// tag.
func memoDoc(tag string, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n\n  \"results\" : [")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n    { \"name\" : \"%s %d\" }", tag, i)
	}
	b.WriteString("\n  ],\n  \"status\" : \"OK\"\n}\n")
	return b.Bytes()
}

func TestBodyMemoAnswersAsWhatsatJSON(t *testing.T) {
	var m bodyMemo
	doc := memoDoc("a", 3)
	want := whatsatJSON(doc, 2)
	first := m.whatsat(doc, 2)
	again := m.whatsat(bytes.Clone(doc), 2) // same content, another slice
	if !bytes.Equal(first, want) || !bytes.Equal(again, want) {
		t.Fatalf("memo bodies %q, %q; want %q", first, again, want)
	}
	if &first[0] != &again[0] {
		t.Error("the same document was cut twice")
	}
	if got, want := m.whatsat(doc, 1), whatsatJSON(doc, 1); !bytes.Equal(got, want) {
		t.Errorf("bound 1: %q, want %q", got, want)
	}
	if got := m.whatsat([]byte("[1, 2]"), 1); got != nil {
		t.Errorf("a document that is not an object: %q, want nil", got)
	}
	// A body is shared: appending to it must not write into the memo.
	_ = append(first, "\n\n"...)
	if got := m.whatsat(doc, 2); !bytes.Equal(got, want) {
		t.Errorf("after an append to a shared body: %q", got)
	}
}

// TestBodyMemoComparesContent: a provider may reuse its buffer for another
// answer, and two documents may share a checksum; neither may be answered
// with the other's body.
func TestBodyMemoComparesContent(t *testing.T) {
	var m bodyMemo
	a, b := memoDoc("a", 3), memoDoc("b", 3)
	buf := bytes.Clone(a)
	m.whatsat(buf, 3)
	copy(buf, b) // same slice, same length, new content
	if got, want := m.whatsat(buf, 3), whatsatJSON(b, 3); !bytes.Equal(got, want) {
		t.Fatalf("reused buffer: %q, want %q", got, want)
	}

	// Forge a collision: a's entry filed under b's key.
	m = bodyMemo{}
	m.whatsat(a, 3)
	keyB := memoKey{sum: crc32.Checksum(b, castagnoli), size: len(b), bound: 3}
	m.entries[keyB] = m.entries[memoKey{sum: crc32.Checksum(a, castagnoli), size: len(a), bound: 3}]
	if got, want := m.whatsat(b, 3), whatsatJSON(b, 3); !bytes.Equal(got, want) {
		t.Fatalf("colliding key: %q, want %q", got, want)
	}
}

func TestBodyMemoBounded(t *testing.T) {
	var m bodyMemo
	first := m.whatsat(memoDoc("d0", 2), 1)
	for i := 1; i <= memoEntries; i++ {
		m.whatsat(memoDoc(fmt.Sprint("d", i), 2), 1)
	}
	if len(m.entries) != memoEntries {
		t.Fatalf("%d entries, want %d", len(m.entries), memoEntries)
	}
	if again := m.whatsat(memoDoc("d0", 2), 1); &again[0] == &first[0] {
		t.Error("the oldest document was not evicted")
	}
	big := memoDoc("big", memoMaxDoc/20)
	if len(big) <= memoMaxDoc {
		t.Fatalf("test document of %d bytes is not over the limit", len(big))
	}
	m.whatsat(big, 1)
	if b1, b2 := m.whatsat(big, 1), m.whatsat(big, 1); &b1[0] == &b2[0] {
		t.Error("a document over memoMaxDoc was kept")
	}
}

func TestBodyMemoConcurrent(t *testing.T) {
	var m bodyMemo
	docs := make([][]byte, 2*memoEntries)
	for i := range docs {
		docs[i] = memoDoc(fmt.Sprint("c", i), 4)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				doc := docs[(g*7+i)%len(docs)]
				if got, want := m.whatsat(doc, 2), whatsatJSON(doc, 2); !bytes.Equal(got, want) {
					t.Errorf("goroutine %d: %q, want %q", g, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
}
