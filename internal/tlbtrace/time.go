package tlbtrace

import "time"

func timeNowPlus() time.Time { return time.Now().Add(200 * time.Millisecond) }
