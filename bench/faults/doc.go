// Package faults holds the data plane's fault tests: a TCP proxy
// (toxiproxy, in process) between the data plane and one of its
// dependencies adds latency, hangs or cuts the connection while load runs,
// and each test checks what the clients see and what the databases hold.
// It has no code of its own outside its tests; see bench/README.md.
package faults
