// Command ferretdb-sqlite runs FerretDB v1, a MongoDB wire-protocol server,
// on its SQLite backend for the integration tests: the embeddable package
// behind a command line of our own, since `go install` of FerretDB's own
// command gives a binary that refuses to start without release metadata.
//
//	ferretdb-sqlite -listen 127.0.0.1:27017 -dir /tmp/data
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dir := flag.String("dir", "", "folder for the SQLite databases (created if missing)")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	fmt.Printf("ferretdb-sqlite listening on %s\n", *listen)
	<-done
}
