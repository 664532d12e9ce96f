package tap

// LeakRoom is what the leak may fill of a ring of ringLen packets in the
// stall limit: the ring less two grants with their kicks (what a live
// daemon may leave unread) and one packet for a sender's enqueue that lands
// between a grant and its kick; at least 1.
func LeakRoom(ringLen, grant uint32) float64 {
	return max(1, float64(ringLen)-2*float64(grant+1)-1)
}
