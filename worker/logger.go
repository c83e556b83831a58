package main

import (
	"fmt"
	"io"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger returns a production (JSON) zap logger writing to w at level.
func newLogger(w io.Writer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	core := zapcore.NewCore(
		zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.Lock(zapcore.AddSync(w)),
		lvl,
	)
	return zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w)))), nil
}

// sdkLogger adapts zap to the Temporal SDK's key-value logger. The SDK passes string keys,
// which is what zap's sugared "w" methods take.
type sdkLogger struct{ s *zap.SugaredLogger }

var (
	_ log.Logger          = sdkLogger{}
	_ log.WithLogger      = sdkLogger{}
	_ log.WithSkipCallers = sdkLogger{}
)

func newSDKLogger(l *zap.Logger) sdkLogger {
	return sdkLogger{s: l.Named("temporal").WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

func (l sdkLogger) Debug(msg string, keyvals ...any) { l.s.Debugw(msg, keyvals...) }
func (l sdkLogger) Info(msg string, keyvals ...any)  { l.s.Infow(msg, keyvals...) }
func (l sdkLogger) Warn(msg string, keyvals ...any)  { l.s.Warnw(msg, keyvals...) }
func (l sdkLogger) Error(msg string, keyvals ...any) { l.s.Errorw(msg, keyvals...) }

func (l sdkLogger) With(keyvals ...any) log.Logger { return sdkLogger{s: l.s.With(keyvals...)} }

func (l sdkLogger) WithCallerSkip(n int) log.Logger {
	return sdkLogger{s: l.s.WithOptions(zap.AddCallerSkip(n))}
}
