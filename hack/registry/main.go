// The OCI registry hack/release pushes the image and the chart to: distribution's own registry
// (github.com/distribution/distribution/v3, the registry behind Docker Hub's and most self-hosted ones),
// with only the filesystem and in-memory storage drivers: its stock main also links the S3, GCS and
// Azure drivers, most of its build and nothing a local registry uses.
package main

import (
	"os"

	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() {
	if err := registry.RootCmd.Execute(); err != nil {
		os.Exit(1)
	}
}
