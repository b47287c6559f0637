package main

import (
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ecotune/ecotune/ggml"
)

func devicesCommand() *cli.Command {
	return &cli.Command{
		Name:  "devices",
		Usage: "list the compute devices this binary can use",
		Description: `Lists ggml's devices: the CPU always, and CUDA GPUs in a build made with
` + "`make CUDA=1`" + `.

Example:
   ecotune devices --json`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *cli.Context) error {
			devs := ggml.Devices()
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				return enc.Encode(devs)
			}
			for _, d := range devs {
				kind := "cpu"
				if d.GPU {
					kind = "gpu"
				}
				fmt.Fprintf(c.App.Writer, "%-8s %-4s %s", d.Name, kind, d.Description)
				if d.TotalBytes > 0 {
					fmt.Fprintf(c.App.Writer, " (%.1f GiB free of %.1f GiB)", float64(d.FreeBytes)/(1<<30), float64(d.TotalBytes)/(1<<30))
				}
				fmt.Fprintln(c.App.Writer)
			}
			return nil
		},
	}
}
