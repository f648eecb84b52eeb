// Package e2e tests routerd from the outside: the built binaries run in lab
// topologies (internal/lab) and are judged by what real clients see.
package e2e
