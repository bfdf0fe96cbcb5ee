// Command djdeploy ships Django applications to Azure App Service.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/djdeploy/djdeploy/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv)
	stop()
	os.Exit(code)
}
