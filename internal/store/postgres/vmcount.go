package postgres

import (
	"context"

	"github.com/novacron/novacron"
)

var _ novacron.VMCounter = (*Store)(nil)

// CountVMsByState counts the VMs of every tenant by state, in one query.
func (s *Store) CountVMsByState(ctx context.Context) (map[novacron.VMState]int, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM vms GROUP BY state`)
	if err != nil {
		return nil, wrap("count vms", err)
	}
	defer rows.Close()
	out := map[novacron.VMState]int{}
	for rows.Next() {
		var (
			state string
			n     int64
		)
		if err := rows.Scan(&state, &n); err != nil {
			return nil, wrap("count vms", err)
		}
		out[novacron.VMState(state)] = int(n)
	}
	return out, wrap("count vms", rows.Err())
}
