// Package deptest keeps Ferry's layering true: its test lists the packages of
// the module with `go list -deps` and fails when one depends on a package that
// the rules table in deptest_test.go forbids to it, such as storage depending on
// the engine or one front door on another.
//
// The package holds no code of its own; everything lives in its tests.
package deptest
