// Package integration starts the four workloads as real processes on loopback and
// tests them together. It holds tests only.
package integration
