//! Process-wide telemetry set-up: the tracing subscriber (stdout + optional OTLP traces and
//! logs) and the metrics recorder (Prometheus + optional OTLP metrics).

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::KeyValue;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_otlp::{LogExporter, MetricExporter, SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::logs::SdkLoggerProvider;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use super::logging::{self, LogFormat};
use super::metrics;

/// Name under which the service reports.
const SERVICE_NAME: &str = "obscura-server";

/// Where and how to export over OTLP/HTTP.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// Base URL of the collector's OTLP/HTTP receiver, e.g. `http://collector:4318`.
    pub endpoint: String,
    pub sampling_ratio: f64,
    pub metrics_interval: Duration,
    pub timeout: Duration,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("--otlp-endpoint: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("a global subscriber is already installed")]
    AlreadyInstalled,
}

/// Handles to flush on exit.
#[derive(Default)]
#[must_use = "call shutdown() on exit so buffered telemetry is exported"]
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    logger: Option<SdkLoggerProvider>,
}

impl Telemetry {
    /// Flushes and stops the exporters (blocking; call once, at exit).
    pub fn shutdown(self) {
        if let Some(tracer) = self.tracer {
            let _ = tracer.shutdown();
        }
        if let Some(meter) = self.meter {
            let _ = meter.shutdown();
        }
        if let Some(logger) = self.logger {
            let _ = logger.shutdown();
        }
    }
}

fn signal_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Installs logging, tracing and metrics for the process.
pub fn init(format: LogFormat, otlp: Option<&OtlpSettings>) -> Result<Telemetry, TelemetryError> {
    let mut telemetry = Telemetry::default();
    let resource = Resource::builder()
        .with_service_name(SERVICE_NAME)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let (trace_layer, log_layer) = match otlp {
        Some(otlp) => {
            let spans = SpanExporter::builder()
                .with_http()
                .with_endpoint(signal_url(&otlp.endpoint, "/v1/traces"))
                .with_timeout(otlp.timeout)
                .build()?;
            let tracer = SdkTracerProvider::builder()
                .with_batch_exporter(spans)
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otlp.sampling_ratio))))
                .with_resource(resource.clone())
                .build();
            let trace_layer = tracing_opentelemetry::layer().with_tracer(tracer.tracer(SERVICE_NAME));
            telemetry.tracer = Some(tracer);

            let logs = LogExporter::builder()
                .with_http()
                .with_endpoint(signal_url(&otlp.endpoint, "/v1/logs"))
                .with_timeout(otlp.timeout)
                .build()?;
            let logger = SdkLoggerProvider::builder().with_batch_exporter(logs).with_resource(resource.clone()).build();
            let log_layer = OpenTelemetryTracingBridge::new(&logger);
            telemetry.logger = Some(logger);

            let exporter = MetricExporter::builder()
                .with_http()
                .with_endpoint(signal_url(&otlp.endpoint, "/v1/metrics"))
                .with_timeout(otlp.timeout)
                .build()?;
            let reader = PeriodicReader::builder(exporter).with_interval(otlp.metrics_interval).build();
            let meter = SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build();
            metrics::install(Some(opentelemetry::metrics::MeterProvider::meter(&meter, SERVICE_NAME)));
            telemetry.meter = Some(meter);
            (Some(trace_layer), Some(log_layer))
        }
        None => {
            metrics::install(None);
            (None, None)
        }
    };
    let stdout = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer().json().flatten_event(true).boxed(),
    };
    tracing_subscriber::registry()
        .with(logging::filter())
        .with(stdout)
        .with(trace_layer)
        .with(log_layer)
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(telemetry)
}
