package resilientotel

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// An Option configures [Instrument] and [ServerMiddleware].
type Option func(*config)

type config struct {
	tp   trace.TracerProvider
	mp   metric.MeterProvider
	prop propagation.TextMapPropagator
}

// WithTracerProvider sets the provider of the tracer. Default (and for
// nil): otel.GetTracerProvider() at the time of the call to Instrument or
// ServerMiddleware.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) { c.tp = tp }
}

// WithMeterProvider sets the provider of the meter. Default (and for nil):
// otel.GetMeterProvider() at the time of the call to Instrument or
// ServerMiddleware.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(c *config) { c.mp = mp }
}

// WithPropagators sets the propagator that writes the trace context into
// each request's _meta (client) and reads it from there (server). Default
// (and for nil): otel.GetTextMapPropagator() at the time of the call, which
// propagates nothing until the application sets one; set
// propagation.TraceContext{} (W3C traceparent and tracestate), with
// propagation.Baggage{} if baggage should travel too.
func WithPropagators(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.prop = p }
}

func newConfig(options []Option) config {
	var c config
	for _, o := range options {
		if o != nil {
			o(&c)
		}
	}
	if c.tp == nil {
		c.tp = otel.GetTracerProvider()
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	if c.prop == nil {
		c.prop = otel.GetTextMapPropagator()
	}
	return c
}

// metaCarrier lets a propagator read and write a request's _meta. Only
// string values are read: a traceparent of another type is not one.
type metaCarrier map[string]any

func (m metaCarrier) Get(key string) string {
	s, _ := m[key].(string)
	return s
}

func (m metaCarrier) Set(key, value string) { m[key] = value }

func (m metaCarrier) Keys() []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}
