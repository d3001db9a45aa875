package live

import "sync"

// Hub fans the events out to the stream's subscribers. Publish never blocks: each
// subscriber has a small buffer, and when a slow browser lets it fill up the oldest
// event waiting there is dropped for the newest (every event carries the run's totals,
// so the page stays right; only the dropped seconds are missing from its charts).
// The hub also keeps the recent events of the current run, so a page opened mid-run
// can draw the seconds it missed: a bounded window, whatever the run's length.
type Hub struct {
	window int

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	recent [][]byte // the current run's last events, oldest first
}

type subscriber struct{ ch chan []byte }

// subscriberBuffer is how many events a subscriber may fall behind before its oldest
// are dropped.
const subscriberBuffer = 8

// NewHub keeps the last window events for new subscribers.
func NewHub(window int) *Hub {
	return &Hub{window: window, subs: map[*subscriber]struct{}{}}
}

// Publish sends one encoded event to every subscriber without waiting for any.
// newRun says the event starts a new run: the window of recent events starts over.
func (h *Hub) Publish(ev []byte, newRun bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if newRun {
		clear(h.recent)
		h.recent = h.recent[:0]
	}
	if len(h.recent) == h.window {
		copy(h.recent, h.recent[1:])
		h.recent = h.recent[:len(h.recent)-1]
	}
	h.recent = append(h.recent, ev)
	for s := range h.subs {
		for {
			select {
			case s.ch <- ev:
			default:
				select { // full: drop the oldest waiting event, then try again
				case <-s.ch:
				default:
				}
				continue
			}
			break
		}
	}
}

// Subscribe returns the recent events of the current run, a channel of the events
// that follow, and a function that ends the subscription.
func (h *Hub) Subscribe() (recent [][]byte, events <-chan []byte, cancel func()) {
	s := &subscriber{ch: make(chan []byte, subscriberBuffer)}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[s] = struct{}{}
	return append([][]byte(nil), h.recent...), s.ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, s)
	}
}

// Subscribers is the number of connected subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
