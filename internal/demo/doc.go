// Package demo holds the end-to-end test of `make demo` (scripts/demo.sh): it runs the script
// as a user would, on spare ports and in a temporary directory, and checks what it prints,
// what the Temporal Web UI and frontend then show, that a second run keeps the history, and
// that Ctrl-C stops everything it started. There is no code here besides the test.
package demo
