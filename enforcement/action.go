package enforcement

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/bot-bottle/bottlecap/budget"
)

// Action is one enforcement or operator action as a value, so that the
// daemon can journal it before it runs and the runner can retry it.
type Action struct {
	// ID is the daemon's journal id; enforcement only carries it back
	// through the runner's callbacks.
	ID     int64
	Kind   budget.ActionKind
	Bottle string
	// Containers are the container ids given at registration; they belong
	// to the bottle in addition to those found by label.
	Containers []string
	Reason     string
}

func (a Action) String() string { return fmt.Sprintf("%s %s", a.Kind, a.Bottle) }

// Memo keeps what a cutoff must give back on restore (network endpoints,
// the original routes file) outside the daemon's memory, so a restore works
// after a restart. The method names match the store's, so the store
// satisfies it as it is.
type Memo interface {
	// PutMemo stores value under (bottle, key), replacing any old value.
	PutMemo(ctx context.Context, bottle, key string, value []byte) error
	// Memo returns the value, or an error wrapping budget.ErrNotFound.
	Memo(ctx context.Context, bottle, key string) ([]byte, error)
	// DeleteMemo removes the value; removing an absent one is not an error.
	DeleteMemo(ctx context.Context, bottle, key string) error
}

// MemMemo is a Memo in memory, for tests and for running without a store.
// The zero value is ready to use.
type MemMemo struct {
	mu sync.Mutex
	m  map[[2]string][]byte
}

// PutMemo implements Memo.
func (m *MemMemo) PutMemo(_ context.Context, bottle, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[[2]string][]byte{}
	}
	m.m[[2]string{bottle, key}] = slices.Clone(value)
	return nil
}

// Memo implements Memo.
func (m *MemMemo) Memo(_ context.Context, bottle, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[[2]string{bottle, key}]
	if !ok {
		return nil, fmt.Errorf("memo %s/%s: %w", bottle, key, budget.ErrNotFound)
	}
	return slices.Clone(v), nil
}

// DeleteMemo implements Memo.
func (m *MemMemo) DeleteMemo(_ context.Context, bottle, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, [2]string{bottle, key})
	return nil
}
