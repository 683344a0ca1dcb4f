package deviceplugin_test

import (
	"github.com/stretchr/testify/assert"
)

type assertCollect = assert.CollectT

func requireEqualCollect(c *assert.CollectT, want, got any) {
	assert.Equal(c, want, got)
}
