package vm

import (
	"context"
	"os"
	"testing"
)

func TestScratch(t *testing.T) {
	v, err := Boot(context.Background(), Options{Cache: "/work/main/images/build/cache", Module: "/work/main"})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	res, err := v.Run(Request{Argv: []string{"bash", os.Getenv("SCRIPT")}, Env: os.Environ()}, os.Stdout)
	t.Log(res, err)
}
