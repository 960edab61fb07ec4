// Package integrationtests holds the scenario and benchmark suites that
// use the library through its public API only: interoperation with the
// C++ library, conformance with net.Conn and nettest, throughput and
// loss benchmarks over loopback and the netsim link emulator, and the
// runs across emulated TUN links beside kernel TCP (bench/tunlinks.sh,
// bench/coexist.sh) or alone, interval by interval (bench/diag.sh).
// Pairs of connections come from internal/harness.
package integrationtests
