package webclient_test

import (
	"testing"

	"github.com/farmlb/farmlb/internal/farmtest"
)

func TestMain(m *testing.M) { farmtest.Main(m) }
