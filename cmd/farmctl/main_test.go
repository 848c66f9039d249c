package main

import (
	"testing"

	"github.com/farmlb/farmlb/internal/farmtest"
)

func TestMain(m *testing.M) { farmtest.Main(m) }
