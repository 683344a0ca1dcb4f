package topology

// Brute-force references exported to the external tests (catalog_test.go).
var (
	RingTable  = ringTable
	SumTable   = sumTable
	BruteBest  = bruteBest
	BruteRing  = bruteRingPerm
	BruteSumOf = bruteSum
)
