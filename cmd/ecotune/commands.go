package main

import "github.com/urfave/cli/v2"

// version is set at link time for releases (-ldflags "-X main.version=...").
var version = "0.1.0-dev"

// commands lists the subcommands; one file each.
func commands() []*cli.Command {
	return []*cli.Command{
		benchCommand(),
		chatCommand(),
		completionCommand(),
		convertCommand(),
		demoCommand(),
		devicesCommand(),
		evalCommand(),
		generateCommand(),
		prepareCommand(),
		pullCommand(),
		quantizeCommand(),
		serveCommand(),
		initCommand(),
		trainCommand(),
		mergeCommand(),
		exportCommand(),
		importCommand(),
	}
}
