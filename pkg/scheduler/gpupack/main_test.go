package gpupack

import (
	"os"
	"testing"

	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
)

func TestMain(m *testing.M) {
	schedmetrics.Register() // the framework runtime records into these
	os.Exit(m.Run())
}
