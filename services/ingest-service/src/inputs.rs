//! The inputs: syslog over TCP (optionally TLS, see [`crate::tls`]) and UDP, each listener bound to one school's source (the
//! binding is the authentication: a listener can only write for its school), and the worker
//! that batches a source's lines into the pipeline.
//!
//! ```text
//!  TCP conn (─▶ TLS handshake) ─▶ Deframer (octet-counted or LF) ─▶ send().await ──┐   bounded queue: when the
//!  UDP datagram (one message each) ─────────────▶ try_send() ───┤   log is slow, TCP reading
//!                                   full: counted as dropped ◀──┘   waits (flow control)
//!  queue ─▶ worker: up to `batch_lines`, or `linger` after the first ─▶ Pipeline::submit
//!           (retried with backoff while the log is unavailable; never dropped)
//! ```

use std::sync::Arc;
use std::time::Duration;

use haven_ingest::syslog::framing::Deframer;
use haven_runtime::Shutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::metrics::IngestMetrics;
use crate::pipeline::{Line, Pipeline, Source, Summary};
use crate::tls;

/// How a source's worker batches.
#[derive(Clone, Copy, Debug)]
pub struct BatchSettings {
    pub max_lines: usize,
    pub linger: Duration,
    /// Lines queued between the inputs and the worker.
    pub queue_lines: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { max_lines: 5_000, linger: Duration::from_millis(20), queue_lines: 50_000 }
    }
}

/// Starts the worker of one source; returns the queue its inputs send to. `on_batch` sees each
/// batch's summary (the demo counts them, tests wait on them).
pub fn spawn_worker(
    pipeline: Arc<Pipeline>,
    source: Source,
    settings: BatchSettings,
    shutdown: Shutdown,
    on_batch: Option<mpsc::UnboundedSender<Summary>>,
) -> (mpsc::Sender<Line>, tokio::task::JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel::<Line>(settings.queue_lines.max(1));
    let task = tokio::spawn(async move {
        let mut batch = Vec::with_capacity(settings.max_lines);
        loop {
            let first = tokio::select! {
                line = receiver.recv() => line,
                () = shutdown.triggered() => None,
            };
            let Some(first) = first else { break };
            batch.push(first);
            let deadline = tokio::time::Instant::now() + settings.linger;
            while batch.len() < settings.max_lines {
                match tokio::time::timeout_at(deadline, receiver.recv()).await {
                    Ok(Some(line)) => batch.push(line),
                    Ok(None) | Err(_) => break,
                }
            }
            let summary = submit_until_done(&pipeline, &source, &batch, &shutdown).await;
            batch.clear();
            if let (Some(summary), Some(on_batch)) = (summary, &on_batch) {
                let _ = on_batch.send(summary);
            }
        }
    });
    (sender, task)
}

/// Submits a batch, retrying with backoff while the log cannot take it; gives up only at
/// shutdown (the lines were never acknowledged to a syslog sender, and the log is the record).
pub(crate) async fn submit_until_done(
    pipeline: &Pipeline,
    source: &Source,
    batch: &[Line],
    shutdown: &Shutdown,
) -> Option<Summary> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match pipeline.submit(source, batch).await {
            Ok(summary) => return Some(summary),
            Err(error) => {
                tracing::warn!(school = %source.school, source = %source.source_id, %error, "ingest batch not appended; retrying");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.triggered() => return None,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Serves syslog over TCP on `listener` for one source until shutdown; with `tls`, each
/// connection's handshake comes first (a failed one is counted for `school`, and only that
/// connection ends).
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    queue: mpsc::Sender<Line>,
    max_frame_bytes: usize,
    (metrics, school): (IngestMetrics, String),
    shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.triggered() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let queue = queue.clone();
        let shutdown = shutdown.clone();
        let Some(tls) = tls.clone() else {
            tokio::spawn(read_frames(stream, queue, max_frame_bytes, shutdown));
            continue;
        };
        let (metrics, school) = (metrics.clone(), school.clone());
        tokio::spawn(async move {
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, tls.accept(stream)) => handshake,
                () = shutdown.triggered() => return,
            };
            match handshake {
                Ok(Ok(stream)) => read_frames(stream, queue, max_frame_bytes, shutdown).await,
                Ok(Err(error)) => {
                    tracing::debug!(%school, %error, "syslog tls handshake failed");
                    metrics.tls_handshake_failed(&school);
                }
                Err(_) => {
                    tracing::debug!(%school, "syslog tls handshake timed out");
                    metrics.tls_handshake_failed(&school);
                }
            }
        });
    }
}

/// Reads one connection's frames (octet-counted or LF) into the queue until it ends; waits
/// while the queue is full (TCP's own flow control then slows the sender).
async fn read_frames<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    queue: mpsc::Sender<Line>,
    max_frame_bytes: usize,
    shutdown: Shutdown,
) {
    let mut deframer = Deframer::new(max_frame_bytes);
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            read = stream.read(&mut buffer) => read,
            () = shutdown.triggered() => return,
        };
        let (read, at_end) = match read {
            Ok(0) | Err(_) => (0, true),
            Ok(read) => (read, false),
        };
        deframer.push(&buffer[..read]);
        loop {
            let frame = if at_end { deframer.finish() } else { deframer.next_frame() };
            let Some(frame) = frame else { break };
            // An overlong frame was skipped by the deframer; the pipeline never sees it.
            let Ok(frame) = frame else { continue };
            if frame.is_empty() {
                continue;
            }
            let line = Line { bytes: frame.to_vec(), received_at: jiff::Timestamp::now() };
            if queue.send(line).await.is_err() {
                return;
            }
        }
        if at_end {
            // Over TLS, the sender learns that all it sent was read (close_notify).
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Serves syslog over UDP on `socket` for one source until shutdown: one message per
/// datagram (RFC 5426). A full queue drops the datagram and counts it.
pub async fn serve_udp(
    socket: UdpSocket,
    queue: mpsc::Sender<Line>,
    pipeline: Arc<Pipeline>,
    school: String,
    shutdown: Shutdown,
) {
    let mut buffer = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = shutdown.triggered() => return,
        };
        let Ok((len, _)) = received else { continue };
        let mut message = &buffer[..len];
        while let [rest @ .., b'\n' | b'\r'] = message {
            message = rest;
        }
        if message.is_empty() {
            continue;
        }
        let line = Line { bytes: message.to_vec(), received_at: jiff::Timestamp::now() };
        match queue.try_send(line) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => pipeline.metrics().dropped(&school, "udp"),
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}
