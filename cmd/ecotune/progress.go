package main

import (
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// byteProgress returns a progress callback that draws a bar of bytes done, with rate
// and ETA, on w: made on the first call, when the total is known, and finished when
// the last of total items is done.
func byteProgress(w io.Writer, desc string) func(bytesDone, bytesTotal int64, done, total int) {
	var bar *progressbar.ProgressBar
	return func(bytesDone, bytesTotal int64, done, total int) {
		if bar == nil {
			bar = progressbar.NewOptions64(bytesTotal,
				progressbar.OptionSetWriter(w),
				progressbar.OptionSetDescription(desc),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
		}
		_ = bar.Set64(bytesDone)
		if done == total {
			_ = bar.Finish()
		}
	}
}
