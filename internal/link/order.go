package link

import (
	"context"
	"fmt"
	"sync"
)

// An Order makes a batch of aligned links against one map (a fleet, a
// corpus: the images' order in it) update the map in a fixed order, link
// i after links 0..i-1, however many run at once and in whatever order
// they start or finish. Placement depends on what the map holds when a
// link takes it (a new library goes to the map's end, its private part
// and its pack where the links before it left room), so without an Order
// parallel links give a map, and images, that depend on which link
// happens to take the map's lock first. With one they give byte for byte
// the map and images of linking the batch one at a time in its order.
//
// Only the part of a link that holds the map waits for its turn: reading
// and grouping the objects, and the links of other layouts, still run in
// parallel. Every index must be finished (Turn.Done, or its link
// returning) for the links after it to proceed: give the links their
// turns in index order to a bounded pool of workers (as a channel does),
// else a worker may wait for an index no worker holds.
type Order struct {
	turns []chan struct{} // turns[i] is closed when links 0..i-1 are done
	mu    sync.Mutex
	done  []bool
	next  int // links 0..next-1 are done
}

// NewOrder returns an Order for a batch of n links (indices 0..n-1).
func NewOrder(n int) *Order {
	o := &Order{turns: make([]chan struct{}, n+1), done: make([]bool, n)}
	for i := range o.turns {
		o.turns[i] = make(chan struct{})
	}
	close(o.turns[0])
	return o
}

// Turn is link i's place in the order: Options.Turn.
func (o *Order) Turn(i int) *Turn {
	if i < 0 || i >= len(o.done) {
		panic(fmt.Sprintf("link: turn %d of an order of %d", i, len(o.done)))
	}
	return &Turn{o: o, i: i}
}

// A Turn is one link's place in an Order.
type Turn struct {
	o *Order
	i int
}

// wait returns when every link before this one is done, or ctx is.
func (t *Turn) wait(ctx context.Context) error {
	select {
	case <-t.o.turns[t.i]:
		return nil
	default:
	}
	select {
	case <-t.o.turns[t.i]:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Done lets the next link take the map once every link before this one
// is done too. Link calls it when it returns (whether or not it took the
// map); a caller that may not call Link for this turn (its inputs failed)
// must call it too. It may be called more than once.
func (t *Turn) Done() {
	o := t.o
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done[t.i] = true
	for o.next < len(o.done) && o.done[o.next] {
		o.next++
		close(o.turns[o.next])
	}
}
