package blocklist

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// errNotModified means the server says the list did not change.
var errNotModified = errors.New("not modified")

// validators are the HTTP cache validators of the last good download.
type validators struct {
	ETag         string `json:"etag,omitempty"`
	LastModified string `json:"last_modified,omitempty"`
}

// open returns the list's content as a stream: the file, or the URL's
// body (conditional on the last good download, with retries and backoff).
func open(ctx context.Context, l *List, tr http.RoundTripper, v validators) (io.ReadCloser, validators, error) {
	if l.File != "" {
		f, err := os.Open(l.File)
		return f, v, err
	}
	client := &http.Client{Timeout: l.Timeout, Transport: tr}
	url := l.URL
	var lastErr error
	// Three attempts, 1s and 2s apart.
	for attempt, backoff := 0, time.Second/2; attempt < 3; attempt, backoff = attempt+1, backoff*2 {
		if attempt > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return nil, v, ctx.Err()
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, v, err
		}
		req.Header.Set("User-Agent", "routerd")
		if v.ETag != "" {
			req.Header.Set("If-None-Match", v.ETag)
		}
		if v.LastModified != "" {
			req.Header.Set("If-Modified-Since", v.LastModified)
		}
		resp, err := client.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		switch {
		case resp.StatusCode == http.StatusNotModified:
			resp.Body.Close()
			return nil, v, errNotModified
		case resp.StatusCode/100 == 2:
			nv := validators{ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified")}
			return &capped{ReadCloser: resp.Body, max: l.MaxSize, left: l.MaxSize}, nv, nil
		case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
			resp.Body.Close()
			lastErr = fmt.Errorf("HTTP %s", resp.Status)
			continue // worth another try
		default:
			resp.Body.Close()
			return nil, v, fmt.Errorf("HTTP %s", resp.Status)
		}
	}
	return nil, v, lastErr
}

// capped fails a read once more than left bytes came.
type capped struct {
	io.ReadCloser
	max, left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("list larger than max_size (%d bytes)", c.max)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}
