package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is the release this binary was built as. Release builds set it with
// -ldflags "-X main.version=v1.2.3"; it is never written at run time.
var version = "dev"

// versionInfo is what `ferry version` reports. The JSON names are a stable
// interface for scripts.
type versionInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit"`
	Go      string `json:"go"`
	OS      string `json:"os"`
	Arch    string `json:"arch"`
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of this ferry binary",
		Long: `Print the version of this ferry binary, the source commit it was built from
(with "-dirty" if the work tree had changes), the Go version that built it and
the platform it runs on.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			bi, _ := debug.ReadBuildInfo()
			info := newVersionInfo(version, bi)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprintf(out, "ferry %s\ncommit:  %s\ngo:      %s\nos/arch: %s/%s\n",
				info.Version, info.Commit, info.Go, info.OS, info.Arch)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object")
	return cmd
}

// newVersionInfo describes the running binary. bi may be nil: binaries built
// without module support carry no build information.
func newVersionInfo(version string, bi *debug.BuildInfo) versionInfo {
	info := versionInfo{
		Version: version,
		Commit:  "unknown",
		Go:      runtime.Version(),
		OS:      runtime.GOOS,
		Arch:    runtime.GOARCH,
	}
	if bi == nil {
		return info
	}
	// `go install github.com/ferrymq/ferry/cmd/ferry@v1.2.3` records the
	// module version but sets no ldflags; use it rather than "dev".
	if version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		info.Version = bi.Main.Version
	}
	var revision, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision != "" {
		info.Commit = revision
		if modified == "true" {
			info.Commit += "-dirty"
		}
	}
	return info
}
