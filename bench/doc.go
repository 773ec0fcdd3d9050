// Package bench holds the data plane's load benchmarks: real sockets on
// loopback, the real chain (directory, pools, sessions, CSRF, analytics)
// over real tenant databases. It has no code of its own outside its tests;
// see README.md for how to run each benchmark and what it reports.
package bench
