package farm

// Source is a live farm table: the seam between the parts that keep the table
// (peerlink's mesh, a list file that is watched) and the parts that serve it
// (pushd's /farm, dnsd's answers).
//
// Implementations are safe for concurrent use.
type Source interface {
	// Table returns the current table as an immutable snapshot: callers must
	// not change it (Clone it first). It is never nil.
	Table() *List
	// Subscribe returns a channel that receives a value after every change
	// of the table (coalesced: a buffer of one, sends never block), and a
	// function that ends the subscription.
	Subscribe() (changed <-chan struct{}, cancel func())
}
