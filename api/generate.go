// Package api holds the protobuf definitions of Ferry's native API
// (ferry/v1/*.proto) and the Go code generated from them: package ferryv1
// for the messages and ferryv1connect for the Connect clients and handlers.
package api

//go:generate ../scripts/genproto.sh
