package main

import (
	"testing"

	"github.com/udt-go/udt/internal/leaktest"
)

// TestMain fails the run when goroutines outlive the tests, once closing
// connections have had time to wind down.
func TestMain(m *testing.M) { leaktest.Main(m) }
