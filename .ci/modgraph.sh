#!/usr/bin/env bash
# Prints the module graph of a program that imports only the library (a
# throwaway module beside the checkout, the library replaced by it), and
# fails if gRPC, protobuf or the Prometheus client is in it: the examples
# that need them live in modules of their own.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/main.go" <<'GO'
package main

import "github.com/udt-go/udt"

func main() { _ = udt.Config{} }
GO
cat > "$dir/go.mod" <<MOD
module example.com/onlyudt

go 1.26.0

require github.com/udt-go/udt v0.0.0

replace github.com/udt-go/udt => $root
MOD
cd "$dir"
go mod tidy
graph=$(go mod graph)
echo "$graph"
if grep -E 'google.golang.org/(grpc|protobuf)' <<<"$graph"; then
  echo "modgraph: gRPC or protobuf in the graph of a program that imports only the library" >&2
  exit 1
fi
if grep -E 'github.com/prometheus/' <<<"$graph"; then
  echo "modgraph: the Prometheus client in the graph of a program that imports only the library" >&2
  exit 1
fi
echo "modgraph: $(wc -l <<<"$graph") edges, no gRPC, protobuf or Prometheus"
