//! The OpenTelemetry exporter behind `--otlp-endpoint`: OTLP over HTTP/protobuf from a bounded batch queue, with what it drops counted in `/metrics`, and the `tracing` layer that feeds it cordon's run spans.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use cordon_engine::trace::{TARGET, TraceOptions};
use cordon_server::metrics::{OTEL_SPANS_DROPPED, OTEL_SPANS_EXPORTED};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};

/// How long one export may take before its batch counts as lost (a
/// collector that accepts connections and never answers).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and what to export.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://host:4318`); `/v1/traces` is added.
    pub endpoint: String,
    /// Spans waiting for export at most; past it new spans are dropped.
    pub queue_size: usize,
    pub options: TraceOptions,
}

/// The running exporter; `shutdown` flushes what is queued.
pub struct Exporter {
    provider: SdkTracerProvider,
}

impl Exporter {
    /// Builds the exporter and its batch thread. Call outside the async
    /// runtime: the blocking HTTP client must not be made inside one.
    pub fn start(settings: &OtlpSettings) -> anyhow::Result<(Self, SpanLayer)> {
        let endpoint = traces_url(&settings.endpoint);
        cordon_mcp::install_tls_provider();
        let http = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(endpoint)
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .context("could not build the OTLP exporter")?;
        let pending = Arc::new(AtomicUsize::new(0));
        let exporter = CountingExporter {
            inner: http,
            pending: Arc::clone(&pending),
            warned_at: AtomicU64::new(0),
        };
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(settings.queue_size)
                    .build(),
            )
            .build();
        let processor = BoundedProcessor {
            inner: batch,
            pending,
            capacity: settings.queue_size,
        };
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name())
                    .build(),
            )
            .build();
        cordon_engine::trace::configure(settings.options);
        let tracer = provider.tracer("cordon");
        Ok((Self { provider }, SpanLayer(tracer)))
    }

    /// Exports what is still queued (a dead collector makes this quick: the
    /// batch fails and is counted), then stops the batch thread.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "trace export did not shut down cleanly");
        }
    }
}

/// The exporter's tracer, to become the `tracing` layer of whichever subscriber the logs use.
pub struct SpanLayer(opentelemetry_sdk::trace::Tracer);

impl SpanLayer {
    /// Only the run spans (target [`TARGET`]) reach OpenTelemetry.
    pub fn layer<S>(self) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
    {
        use tracing_subscriber::Layer as _;
        let only_runs =
            tracing_subscriber::filter::Targets::new().with_target(TARGET, tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.0)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(only_runs)
            .boxed()
    }
}

/// `OTEL_SERVICE_NAME` when set, else `cordon`.
fn service_name() -> String {
    std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "cordon".to_owned())
}

/// The collector's traces URL: `/v1/traces` under its base URL, as the
/// OTLP spec builds it from `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub fn traces_url(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    }
}

/// The endpoint for the log: scheme, host, port and path only, since a URL
/// may carry credentials.
pub fn redacted(endpoint: &str) -> String {
    match reqwest::Url::parse(endpoint) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            traces_url(url.as_str())
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// Lets a span into the batch queue only while fewer than `capacity` are
/// waiting or being exported, so every drop is seen and counted here (the
/// SDK's own queue, of the same size, never overflows).
#[derive(Debug)]
struct BoundedProcessor<P> {
    inner: P,
    /// Spans handed on and not yet exported (or failed).
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

impl<P: SpanProcessor> SpanProcessor for BoundedProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let admitted = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |pending| {
                (pending < self.capacity).then_some(pending + 1)
            })
            .is_ok();
        if admitted {
            self.inner.on_end(span);
        } else {
            metrics::counter!(OTEL_SPANS_DROPPED).increment(1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Counts each batch's spans as exported or dropped, and gives their room
/// in the queue back.
struct CountingExporter<E> {
    inner: E,
    pending: Arc<AtomicUsize>,
    /// Unix seconds of the last warning: a dead collector is logged once a minute.
    warned_at: AtomicU64,
}

impl<E> fmt::Debug for CountingExporter<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CountingExporter")
    }
}

impl<E: SpanExporter> CountingExporter<E> {
    fn settle(&self, spans: usize, result: &OTelSdkResult) {
        self.pending.fetch_sub(spans, Ordering::AcqRel);
        let Err(error) = result else {
            metrics::counter!(OTEL_SPANS_EXPORTED).increment(spans as u64);
            return;
        };
        metrics::counter!(OTEL_SPANS_DROPPED).increment(spans as u64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs());
        let last = self.warned_at.load(Ordering::Relaxed);
        if now >= last + 60
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, spans, "the trace collector did not take a batch; its spans are dropped");
        }
    }
}

impl<E: SpanExporter> SpanExporter for CountingExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.settle(spans, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_added_once() {
        assert_eq!(traces_url("http://c:4318"), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/"), "http://c:4318/v1/traces");
        assert_eq!(
            traces_url("http://c:4318/v1/traces"),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn the_logged_endpoint_keeps_no_credentials() {
        let logged = redacted("http://user:secret@c:4318/?token=abc");
        assert_eq!(logged, "http://c:4318/v1/traces");
    }
}
