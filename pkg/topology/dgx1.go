package topology

// DGX1Lanes is the NVLink lane map of NVIDIA's DGX-1 with V100 GPUs (the
// hybrid cube-mesh, NVLink 2, 6 lanes per GPU), as nvidia-smi topo -m shows
// it: DGX1Lanes[i][j] lanes between GPUs i and j, 0 for none. Quads
// {0,1,2,3} and {4,5,6,7} are fully connected, plus i <-> i+4; some pairs
// have 2 lanes, some 1. The simulator's V100 shape and the test fixtures
// share it; tests that check discovery keep their own written copy.
var DGX1Lanes = [8][8]int{
	{0, 1, 1, 2, 2, 0, 0, 0},
	{1, 0, 2, 1, 0, 2, 0, 0},
	{1, 2, 0, 2, 0, 0, 1, 0},
	{2, 1, 2, 0, 0, 0, 0, 1},
	{2, 0, 0, 0, 0, 1, 1, 2},
	{0, 2, 0, 0, 1, 0, 2, 1},
	{0, 0, 1, 0, 1, 2, 0, 2},
	{0, 0, 0, 1, 2, 1, 2, 0},
}
