package main

import (
	"context"
	"errors"

	"github.com/callwatch/callwatch/config"
	"github.com/callwatch/callwatch/engine"
)

func openClickHouseSource(ctx context.Context, cfg *config.Config) (engine.LeafSource, func(), error) {
	return nil, nil, errors.New("not yet wired")
}
