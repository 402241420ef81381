// Command compose-dotenv reads a .env file on stdin with compose-go, the
// library docker compose parses .env files with, and prints the variables as
// a JSON object (or the parse error on stderr, exit 1). No lookup function:
// like a shell with none of the file's variables set, so only the file
// itself decides each value. Built by test/e2e/install-programs.sh for
// test/e2e/env-file.e2e.test.ts.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

func main() {
	// The reader path, as for a file: it also drops a UTF-8 byte-order mark.
	vars, err := dotenv.ParseWithLookup(os.Stdin, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(vars); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
